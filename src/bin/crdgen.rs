//! Prints relman's CustomResourceDefinitions as YAML, one file per CRD when given a directory.
//!
//! `crdgen` writes every CRD to stdout as a multi-document stream; `crdgen DIR` writes
//! `DIR/<plural>.<group>.yaml` for each, which is what `make crds` does.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: Option<PathBuf> = std::env::args_os().nth(1).map(PathBuf::from);
    for crd in relman::api::crds() {
        let yaml = serde_yaml::to_string(&crd)?;
        match &out {
            Some(dir) => {
                let name = crd.metadata.name.as_deref().ok_or("CRD without a name")?;
                std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
