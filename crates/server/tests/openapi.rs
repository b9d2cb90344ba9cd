//! The served OpenAPI document against the router and the contract.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every operation of `API.md` this server implements, with the statuses the contract names.
const CONTRACT: &[(&str, &str, &[u16])] = &[
    (
        "post",
        "/api/auth/register",
        &[201, 409, 422, 400, 415, 413],
    ),
    (
        "post",
        "/api/auth/login",
        &[200, 401, 422, 429, 400, 415, 413],
    ),
    ("get", "/api/auth/me", &[200, 401]),
    ("post", "/api/auth/logout", &[204, 401]),
    (
        "post",
        "/api/auth/password",
        &[204, 401, 422, 400, 415, 413],
    ),
    ("post", "/api/expenses", &[201, 401, 422, 400, 415, 413]),
    ("get", "/api/expenses", &[200, 400, 401]),
    ("get", "/api/expenses/{id}", &[200, 401, 404]),
    ("get", "/api/expenses/summary", &[200, 400, 401]),
    (
        "patch",
        "/api/expenses/{id}",
        &[200, 401, 404, 422, 400, 415, 413],
    ),
    ("delete", "/api/expenses/{id}", &[204, 401, 404]),
    ("get", "/api/expenses/trend", &[200, 400, 401]),
    ("get", "/api/expenses/export", &[200, 400, 401]),
    ("get", "/api/categories", &[200, 401]),
    (
        "post",
        "/api/categories/rename",
        &[200, 401, 404, 422, 400, 415, 413],
    ),
    (
        "post",
        "/api/imports/mock",
        &[201, 202, 401, 422, 400, 415, 413],
    ),
    (
        "post",
        "/api/imports/csv",
        &[201, 200, 202, 401, 422, 400, 415, 413],
    ),
    (
        "post",
        "/api/imports/ofx",
        &[201, 200, 202, 401, 422, 400, 415, 413],
    ),
    ("get", "/api/imports/{job_id}", &[200, 401, 404]),
    ("get", "/healthz", &[200]),
    ("get", "/readyz", &[200, 503]),
    ("get", "/metrics", &[200]),
    ("get", "/api/openapi.json", &[200]),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &common::TestApp) -> Value {
    let reply = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "the document is public");
    assert_eq!(reply.body["openapi"], "3.1.0");
    reply.body
}

/// (method, path) -> documented statuses.
fn operations(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let statuses = op["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .map(|s| s.parse().expect("numeric status"))
                    .collect();
                ops.insert((method.to_owned(), path.clone()), statuses);
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_describes_exactly_the_contract() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    let documented: BTreeSet<_> = ops.keys().cloned().collect();
    let contract: BTreeSet<_> = CONTRACT
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, contract);
    for (method, path, statuses) in CONTRACT {
        let have = &ops[&((*method).to_owned(), (*path).to_owned())];
        for status in *statuses {
            assert!(have.contains(status), "{method} {path} documents {status}");
        }
        let op = &doc["paths"][path][method];
        let public = path.ends_with("/register")
            || path.ends_with("/login")
            || !path.starts_with("/api/")
            || *path == "/api/openapi.json";
        assert_eq!(
            op.get("security").is_none(),
            public,
            "{method} {path}: bearer security iff authenticated"
        );
        if !public {
            assert!(have.contains(&401), "{method} {path} documents 401");
        }
        for status in have.iter().filter(|s| **s >= 400) {
            let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"]
                ["$ref"];
            if *path != "/readyz" {
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status} is the error body"
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let amount = &doc["components"]["schemas"]["Money"];
    assert_eq!(amount["type"], "string");
    assert!(
        amount["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("{2}"))
    );
    let link =
        &doc["paths"]["/api/expenses"]["post"]["responses"]["201"]["links"]["GetCreatedExpense"];
    assert_eq!(link["operationId"], "getExpense");
    for import in ["mock", "csv", "ofx"] {
        let queued = &doc["paths"][format!("/api/imports/{import}")]["post"]["responses"]["202"];
        assert_eq!(
            queued["links"]["GetImportJob"]["operationId"],
            "getImportJob"
        );
        assert_eq!(
            queued["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ImportJob"
        );
    }
    let limit = doc["paths"]["/api/expenses"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit parameter")
        .clone();
    assert_eq!(
        (
            limit["schema"]["minimum"].as_i64(),
            limit["schema"]["maximum"].as_i64()
        ),
        (Some(1), Some(200))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_serves_every_documented_operation_and_no_other_method() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.new_user().await;
    let ops = operations(&document(&app).await);
    let paths: BTreeSet<String> = ops.keys().map(|(_, p)| p.clone()).collect();
    for path in &paths {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{job_id}", &uuid::Uuid::now_v7().to_string());
        for method in METHODS {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let reply = app.request(verb, &concrete, Some(&token), None).await;
            match ops.get(&(method.to_owned(), path.clone())) {
                Some(statuses) => assert!(
                    statuses.contains(&reply.status.as_u16()),
                    "{method} {path} answered {} which it does not document: {}",
                    reply.status,
                    reply.body
                ),
                None => {
                    assert_eq!(
                        reply.status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is not routed"
                    );
                    assert_eq!(reply.body["error"], "method_not_allowed");
                }
            }
        }
    }
}
