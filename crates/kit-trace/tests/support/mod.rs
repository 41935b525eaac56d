//! Shared by the kit-trace tests: a Zipkin collector on loopback and the Zipkin v2 schema check.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Every span the collector was sent until it has been quiet for 500 ms, each batch checked
/// against the Zipkin v2 API definition.
#[allow(dead_code)] // Not every test binary that shares this module uses it.
pub async fn spans_posted(posted: &mut mpsc::UnboundedReceiver<(String, Value)>) -> Vec<Value> {
    let mut spans = Vec::new();
    while let Ok(Some((_, body))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), posted.recv()).await
    {
        assert_eq!(errors_of(&body), Vec::<String>::new(), "{body:#}");
        spans.extend(body.as_array().unwrap().iter().cloned());
    }
    spans
}

/// A Zipkin collector's HTTP side: `POST /api/v2/spans` answered 202, each body sent on.
pub async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    let mut content_type = String::new();
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "content-type" => content_type = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    assert_eq!(content_type, "application/json");
                    let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
                    let _ = tx.send((path, serde_json::from_slice(&body).unwrap()));
                    stream
                        .get_mut()
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (addr, rx)
}

/// The JSON Schema keywords the Zipkin schema uses, checked; the errors found.
pub fn validate(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        return validate(&root["definitions"][name], root, value, at, errors);
    }
    let mut fail = |why: String| errors.push(format!("{at}: {why}"));
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            other => panic!("type {other} not handled"),
        };
        if !ok {
            return fail(format!("{value} is not {ty}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            fail(format!("{s:?} is too short"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            fail(format!("{s:?} is too long"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(pattern).unwrap().is_match(s)
        {
            fail(format!("{s:?} does not match {pattern}"));
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("ipv4") if s.parse::<std::net::Ipv4Addr>().is_err() => {
                fail(format!("{s} not ipv4"))
            }
            Some("ipv6") if s.parse::<std::net::Ipv6Addr>().is_err() => {
                fail(format!("{s} not ipv6"))
            }
            _ => {}
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            fail(format!("{s:?} is not one of {allowed:?}"));
        }
    }
    if let Some(n) = value.as_i64() {
        if schema
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|m| n < m)
        {
            fail(format!("{n} is under the minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_i64)
            .is_some_and(|m| n > m)
        {
            fail(format!("{n} is over the maximum"));
        }
    }
    if let Some(items) = value.as_array()
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, root, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{at}: {required} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => {
                    validate(field_schema, root, field, &format!("{at}.{key}"), errors)
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: unknown field {key}")),
                    Some(extra) if extra.is_object() => {
                        validate(extra, root, field, &format!("{at}.{key}"), errors)
                    }
                    _ => {}
                },
            }
        }
    }
}

pub fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zipkin2-span.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn errors_of(spans: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    validate(
        &schema["definitions"]["ListOfSpans"],
        &schema,
        spans,
        "spans",
        &mut errors,
    );
    errors
}
