//! The block explorer the node serves itself, on the gRPC port: `GET /explorer/` (and `/`, which redirects
//! there). Static assets (plain ES modules under `node/explorer/`, no build step, nothing fetched from
//! elsewhere) are compiled into the binary; the page calls the node back over gRPC-web from the same origin,
//! so it needs no CORS grant.
//!
//! The page learns every message layout from the node itself: `GET /explorer/schema.json` is the node's own
//! file descriptor set (what reflection serves) reduced to what a protobuf codec needs — for each message its
//! fields (name, number, type, label, message or enum type), each enum's values, and each service's methods
//! with their request and response types. So the explorer decodes exactly what this node speaks, with no copy
//! of the `.proto` files to drift.
//!
//! Only `GET`/`HEAD` of the listed paths are answered here; every other request (gRPC, gRPC-web, a POST to
//! these paths) goes on to the API unchanged. `[grpc] explorer = false` turns the page off.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use prost::Message;
use serde_json::{json, Value};

/// Where the page is served.
pub const PREFIX: &str = "/explorer/";

/// One static asset: its path under [`PREFIX`], content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../explorer/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../explorer/app.js"),
    },
    Asset {
        path: "proto.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../explorer/proto.js"),
    },
    Asset {
        path: "grpcweb.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../explorer/grpcweb.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../explorer/style.css"),
    },
];

/// The reduced descriptor set as JSON (see the module docs), computed once.
pub fn schema_json() -> &'static [u8] {
    static SCHEMA: OnceLock<Vec<u8>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The descriptor set is compiled into the binary by the build script; a failure to decode it is a
        // build defect, answered as an empty schema (the page then says it cannot read the node's types).
        let set = prost_types::FileDescriptorSet::decode(super::grpc::pb::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        serde_json::to_vec(&schema(&set)).unwrap_or_default()
    })
}

/// The codec's view of a descriptor set: `{messages: {name: [field…]}, enums: {name: {number: name}},
/// services: {name: {method: {input, output, server_streaming}}}}`, names fully qualified without the
/// leading dot.
pub fn schema(set: &prost_types::FileDescriptorSet) -> Value {
    let mut messages = BTreeMap::new();
    let mut enums = BTreeMap::new();
    let mut services = BTreeMap::new();
    for file in &set.file {
        let package = file.package();
        for m in &file.message_type {
            add_message(package, m, &mut messages, &mut enums);
        }
        for e in &file.enum_type {
            add_enum(package, e, &mut enums);
        }
        for s in &file.service {
            let methods: BTreeMap<_, _> = s
                .method
                .iter()
                .map(|m| {
                    (
                        m.name().to_owned(),
                        json!({
                            "input": m.input_type().trim_start_matches('.'),
                            "output": m.output_type().trim_start_matches('.'),
                            "server_streaming": m.server_streaming(),
                            "client_streaming": m.client_streaming(),
                        }),
                    )
                })
                .collect();
            services.insert(qualify(package, s.name()), json!(methods));
        }
    }
    json!({ "messages": messages, "enums": enums, "services": services })
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn add_message(
    scope: &str,
    m: &prost_types::DescriptorProto,
    messages: &mut BTreeMap<String, Value>,
    enums: &mut BTreeMap<String, Value>,
) {
    let name = qualify(scope, m.name());
    let oneofs: Vec<&str> = m.oneof_decl.iter().map(|o| o.name()).collect();
    let fields: Vec<Value> = m
        .field
        .iter()
        .map(|f| {
            // A proto3 `optional` field sits in a synthetic oneof: presence, not a choice.
            let oneof = f
                .oneof_index
                .filter(|_| !f.proto3_optional())
                .and_then(|i| oneofs.get(i as usize).copied());
            json!({
                "name": f.name(),
                "number": f.number(),
                "type": f.r#type,
                "repeated": f.label == Some(prost_types::field_descriptor_proto::Label::Repeated as i32),
                "optional": f.proto3_optional(),
                "type_name": f.type_name().trim_start_matches('.'),
                "oneof": oneof,
            })
        })
        .collect();
    for nested in &m.nested_type {
        add_message(&name, nested, messages, enums);
    }
    for e in &m.enum_type {
        add_enum(&name, e, enums);
    }
    messages.insert(name, Value::Array(fields));
}

fn add_enum(
    scope: &str,
    e: &prost_types::EnumDescriptorProto,
    enums: &mut BTreeMap<String, Value>,
) {
    let values: BTreeMap<String, &str> = e
        .value
        .iter()
        .map(|v| (v.number().to_string(), v.name()))
        .collect();
    enums.insert(qualify(scope, e.name()), json!(values));
}

/// What the explorer answers for `req`, or None when the request is not for it (it goes on to the API).
fn answer(method: &Method, path: &str) -> Option<Response<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    if path == "/" || path == "/explorer" {
        return Some(
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, PREFIX)
                .body(Bytes::new())
                .unwrap_or_default(),
        );
    }
    let rest = match path.strip_prefix(PREFIX)? {
        "" => "index.html",
        rest => rest,
    };
    let (content_type, body): (&str, Bytes) = if rest == "schema.json" {
        ("application/json", Bytes::from_static(schema_json()))
    } else {
        match ASSETS.iter().find(|a| a.path == rest) {
            Some(a) => (a.content_type, Bytes::from_static(a.body)),
            None => {
                return Some(
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                        .body(Bytes::from_static(b"not found\n"))
                        .unwrap_or_default(),
                )
            }
        }
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    Some(
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            // The page may be framed by nobody and runs only its own scripts (chain data is shown as text).
            .header(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            )
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
            .unwrap_or_default(),
    )
}

/// The layer that answers the explorer's paths in front of the API (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExplorerLayer {
    /// Whether the page is served (`[grpc] explorer`); when false every request goes to the API.
    pub enabled: bool,
}

impl<S> tower_layer::Layer<S> for ExplorerLayer {
    type Service = Explorer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Explorer {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service [`ExplorerLayer`] wraps around the API.
#[derive(Clone, Debug)]
pub struct Explorer<S> {
    inner: S,
    enabled: bool,
}

impl<S, B> tower_service::Service<Request<B>> for Explorer<S>
where
    S: tower_service::Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.enabled {
            if let Some(res) = answer(req.method(), req.uri().path()) {
                let res = res.map(|b| tonic::body::Body::new(http_body_util::Full::new(b)));
                return Box::pin(async move { Ok(res) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_holds_every_type_the_page_decodes() {
        let schema: Value = serde_json::from_slice(schema_json()).expect("json");
        for m in [
            "lode.node.v1.GetBlockResponse",
            "lode.node.v1.BlockEvent",
            "lode.node.v1.GetTxResponse",
            "lode.tx.v1.Tx",
            "lode.tx.v1.TxBody",
            "lode.bank.v1.MsgSend",
            "lode.staking.v1.ValidatorsResponse",
            "lode.market.v1.StatsResponse",
            "google.protobuf.Timestamp",
        ] {
            assert!(schema["messages"][m].is_array(), "{m} missing");
        }
        let send = &schema["messages"]["lode.tx.v1.Msg"];
        let f = send
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == "send")
            .expect("send arm");
        assert_eq!(f["number"], 1);
        assert_eq!(f["oneof"], "sum");
        assert_eq!(f["type_name"], "lode.bank.v1.MsgSend");
        // A proto3 `optional` field is marked optional, not a oneof arm.
        let from = schema["messages"]["lode.node.v1.SubscribeRequest"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == "from_height")
            .expect("from_height")
            .clone();
        assert_eq!(from["optional"], true);
        assert!(from["oneof"].is_null());
        let m = &schema["services"]["lode.node.v1.EventService"]["Subscribe"];
        assert_eq!(m["server_streaming"], true);
        assert_eq!(m["input"], "lode.node.v1.SubscribeRequest");
        assert_eq!(
            schema["enums"]["lode.gov.v1.ProposalStatus"]["2"],
            "PROPOSAL_STATUS_VOTING_PERIOD"
        );
    }

    #[test]
    fn only_gets_of_the_page_are_answered() {
        assert!(answer(&Method::POST, "/explorer/app.js").is_none());
        assert!(answer(&Method::POST, "/lode.node.v1.QueryService/Status").is_none());
        assert!(answer(&Method::GET, "/lode.node.v1.QueryService/Status").is_none());
        let r = answer(&Method::GET, "/").expect("redirect");
        assert_eq!(r.status(), StatusCode::FOUND);
        let r = answer(&Method::GET, "/explorer/").expect("index");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.body().starts_with(b"<!doctype html>"));
        let r = answer(&Method::GET, "/explorer/../Cargo.toml").expect("answered");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = answer(&Method::HEAD, "/explorer/app.js").expect("head");
        assert!(r.body().is_empty());
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }
}
