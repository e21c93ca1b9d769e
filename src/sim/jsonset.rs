//! Building JSON by RFC 6901 pointers: a defined venue's messages are made by
//! setting each value where its definition's pointer says, creating the
//! objects and arrays on the way (a numeric token under nothing makes an
//! array, any other an object).

use serde_json::{Map, Value};

use crate::json::Pointer;

/// The place `pointer` names in `root`, made (replacing scalars on the way). Its steps are the
/// engine's own reading of it ([`Pointer`]), so both name the same value.
fn place<'v>(root: &'v mut Value, pointer: &str) -> &'v mut Value {
    let pointer = Pointer::parse(pointer).expect("checked when the definition was loaded");
    let mut at = root;
    for (name, index) in pointer.steps() {
        let index = index.filter(|_| at.is_array() || at.is_null());
        if let Some(i) = index {
            if !at.is_array() {
                *at = Value::Array(Vec::new());
            }
            let Value::Array(items) = at else {
                unreachable!("made an array above")
            };
            if items.len() <= i {
                items.resize(i + 1, Value::Null);
            }
            at = &mut items[i];
        } else {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            let Value::Object(map) = at else {
                unreachable!("made an object above")
            };
            at = map.entry(name).or_insert(Value::Null);
        }
    }
    at
}

/// Sets the value at `pointer` to `value`.
pub(crate) fn set(root: &mut Value, pointer: &str, value: Value) {
    *place(root, pointer) = value;
}

/// Sets the value at `pointer` to `value` unless something not null is there.
pub(crate) fn set_absent(root: &mut Value, pointer: &str, value: Value) {
    if root.pointer(pointer).is_none_or(Value::is_null) {
        set(root, pointer, value);
    }
}

/// A definition's literal (a condition's `equals`) as JSON.
pub(crate) fn literal(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_build_objects_and_arrays() {
        let mut v = Value::Null;
        set(&mut v, "/bbo/1/px", Value::from("2"));
        set(&mut v, "/bbo/0/px", Value::from("1"));
        set(&mut v, "/a~1b/c~0d", Value::from(3));
        set_absent(&mut v, "/bbo/0/px", Value::from("x"));
        set_absent(&mut v, "/e", Value::Bool(true));
        assert_eq!(
            v,
            serde_json::json!({"bbo":[{"px":"1"},{"px":"2"}],"a/b":{"c~d":3},"e":true})
        );
        let mut root = Value::Null;
        set(&mut root, "", serde_json::json!([1]));
        assert_eq!(root, serde_json::json!([1]));
        assert_eq!(literal(&toml::Value::Integer(-3)), Value::from(-3));
    }
}
