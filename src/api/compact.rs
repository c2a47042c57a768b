//! [`Compact`]: a Kubernetes object kept in memory as its JSON text.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value of `T` (a Job or pod template) kept as its compact JSON text and parsed when read.
///
/// relman keeps every Release in its watch cache, and a Release carries two Job templates
/// and, once it has run, the pod template each Deployment ran before. As k8s-openapi structs
/// those take 7 KiB or more each, because every optional field of a pod spec and of each
/// container has its slot; as JSON they take a few hundred bytes. They are read only to
/// create a Job or revert a Deployment. On the wire and in the schema a `Compact<T>` is
/// exactly a `T`: it is read by deserializing a `T` (so a malformed template is refused as
/// before) and written by writing that `T` again.
pub struct Compact<T> {
    json: Arc<str>,
    of: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Compact<T> {
    /// `value`, kept as JSON.
    pub fn new(value: &T) -> Self {
        #[allow(clippy::expect_used)]
        let json = serde_json::to_string(value)
            // serde_json fails only for maps with non-string keys or a Serialize that chooses
            // to fail; the Kubernetes types kept here have neither.
            .expect("a Kubernetes object serializes to JSON");
        Self {
            json: json.into(),
            of: PhantomData,
        }
    }

    /// The value, parsed from its JSON.
    pub fn get(&self) -> T {
        #[allow(clippy::expect_used)]
        serde_json::from_str(&self.json)
            // Every Compact was made by serializing a T ([`Compact::new`], also behind
            // Deserialize), so its text parses as a T.
            .expect("a Compact<T> holds the JSON of a T")
    }
}

impl<T: Serialize + DeserializeOwned> From<T> for Compact<T> {
    fn from(value: T) -> Self {
        Self::new(&value)
    }
}

impl<T: Serialize + DeserializeOwned + Default> Default for Compact<T> {
    fn default() -> Self {
        Self::new(&T::default())
    }
}

impl<T> Clone for Compact<T> {
    fn clone(&self) -> Self {
        Self {
            json: self.json.clone(),
            of: PhantomData,
        }
    }
}

/// Equal when the JSON is: serializing a k8s-openapi value is deterministic (fields in
/// declaration order, maps sorted).
impl<T> PartialEq for Compact<T> {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl<T> Eq for Compact<T> {}

impl<T> fmt::Debug for Compact<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

impl<T> Serialize for Compact<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::from_str::<serde_json::Value>(&self.json)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Compact<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(|value| Self::new(&value))
    }
}

impl<T: JsonSchema> JsonSchema for Compact<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::batch::v1::JobTemplateSpec;
    use serde_json::json;

    use super::*;

    fn template() -> serde_json::Value {
        json!({"metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": "smoke:1", "args": ["--fast"]}]}}}})
    }

    #[test]
    fn reads_and_writes_exactly_what_the_typed_value_does() {
        let typed: JobTemplateSpec = serde_json::from_value(template()).unwrap();
        let compact: Compact<JobTemplateSpec> = serde_json::from_value(template()).unwrap();
        assert_eq!(compact.get(), typed);
        assert_eq!(
            serde_json::to_value(&compact).unwrap(),
            serde_json::to_value(&typed).unwrap()
        );
        assert_eq!(compact, Compact::new(&typed));
    }

    #[test]
    fn refuses_what_the_typed_value_refuses() {
        let wrong = json!({"spec": {"backoffLimit": "zero"}});
        let typed = serde_json::from_value::<JobTemplateSpec>(wrong.clone()).unwrap_err();
        let compact = serde_json::from_value::<Compact<JobTemplateSpec>>(wrong).unwrap_err();
        assert_eq!(compact.to_string(), typed.to_string());
    }

    #[test]
    fn holds_far_less_than_the_typed_value() {
        let compact: Compact<JobTemplateSpec> = serde_json::from_value(template()).unwrap();
        let held = serde_json::to_string(&compact).unwrap().len();
        assert!(held < 300, "{held}");
        assert!(std::mem::size_of::<JobTemplateSpec>() > 2_000);
    }
}
