//! The CRDs in `crds/` must be what `make crds` generates from the API types.

use std::path::Path;

#[test]
fn generated_crds_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let crds = relman::api::crds();
    for crd in &crds {
        let name = crd.metadata.name.as_deref().expect("CRD name");
        let path = dir.join(format!("{name}.yaml"));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}): run `make crds`", path.display()));
        let generated = serde_yaml::to_string(crd).expect("CRD serializes");
        assert!(
            committed == generated,
            "{} is stale: the API types changed; run `make crds` and commit the result",
            path.display()
        );
    }
    let files = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert_eq!(
        files,
        crds.len(),
        "crds/ holds a file that no API type generates: remove it"
    );
}
