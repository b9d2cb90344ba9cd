//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "finance",
        description = "Multi-user expense tracker. Money is exact: amounts are decimal strings with two decimals. \
                       Every error is `{error, message, fields?}`; every response carries `X-Request-Id`.",
    ),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "expenses", description = "Expenses and their summary"),
        (name = "categories", description = "Categories in use, renaming and merging"),
        (name = "imports", description = "Bank imports: simulated sync, CSV and OFX files"),
        (name = "operations", description = "Health, readiness, metrics"),
    ),
    components(schemas(finance_shared::ExportFormat, finance_shared::Decimal, finance_shared::SignConvention)),
)]
pub struct ApiDoc;

/// What the annotations cannot say: the bearer scheme, stable operation ids and links.
/// Applied once the routes have added their paths.
pub struct Contract;

const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("/api/auth/register", "post", "register"),
    ("/api/auth/login", "post", "login"),
    ("/api/auth/me", "get", "getMe"),
    ("/api/auth/logout", "post", "logout"),
    ("/api/auth/password", "post", "changePassword"),
    ("/metrics", "get", "metrics"),
    ("/api/openapi.json", "get", "openapi"),
    ("/api/expenses", "post", "createExpense"),
    ("/api/expenses", "get", "listExpenses"),
    ("/api/expenses/{id}", "get", "getExpense"),
    ("/api/expenses/{id}", "patch", "updateExpense"),
    ("/api/expenses/{id}", "delete", "deleteExpense"),
    ("/api/expenses/summary", "get", "getSummary"),
    ("/api/expenses/trend", "get", "getTrend"),
    ("/api/expenses/export", "get", "exportExpenses"),
    ("/api/categories", "get", "listCategories"),
    ("/api/categories/rename", "post", "renameCategory"),
    ("/api/imports/mock", "post", "importMock"),
    ("/api/imports/csv", "post", "importCsv"),
    ("/api/imports/ofx", "post", "importOfx"),
    ("/api/imports/{job_id}", "get", "getImportJob"),
    ("/healthz", "get", "health"),
    ("/readyz", "get", "readiness"),
];

impl Modify for Contract {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                if let Some((_, _, id)) = OPERATION_IDS
                    .iter()
                    .find(|(p, m, _)| p == path && *m == method)
                {
                    operation.operation_id = Some((*id).to_owned());
                }
                // A queued import can be followed by its id.
                if path.starts_with("/api/imports/")
                    && method == "post"
                    && let Some(RefOr::T(queued)) = operation.responses.responses.get_mut("202")
                {
                    queued.links.insert(
                        "GetImportJob".to_owned(),
                        RefOr::T(
                            LinkBuilder::new()
                                .operation_id("getImportJob")
                                .parameter("job_id", "$response.body#/job_id")
                                .description("The import just queued")
                                .build(),
                        ),
                    );
                }
                // A created expense can be fetched by its id: stateful testers follow this.
                if path == "/api/expenses"
                    && method == "post"
                    && let Some(RefOr::T(created)) = operation.responses.responses.get_mut("201")
                {
                    for (name, target) in [
                        ("GetCreatedExpense", "getExpense"),
                        ("UpdateCreatedExpense", "updateExpense"),
                        ("DeleteCreatedExpense", "deleteExpense"),
                    ] {
                        created.links.insert(
                            name.to_owned(),
                            RefOr::T(
                                LinkBuilder::new()
                                    .operation_id(target)
                                    .parameter("id", "$response.body#/id")
                                    .description("The expense just created")
                                    .build(),
                            ),
                        );
                    }
                }
            }
        }
    }
}

static DOCUMENT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();

/// Keeps the finished document for [`serve`].
pub fn publish(doc: &Document) {
    let _ = DOCUMENT.set(axum::body::Bytes::from(document_json(doc)));
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
pub async fn serve() -> axum::response::Response {
    let body = DOCUMENT.get().cloned().unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The document as JSON. utoipa 5 writes a link's `operationId` as
/// `operation_id`; tools that follow links need the spelling of the spec.
pub fn document_json(doc: &Document) -> String {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    fix_link_keys(&mut value, false);
    serde_json::to_string(&value).unwrap_or_else(|_| "{}".to_owned())
}

fn fix_link_keys(value: &mut serde_json::Value, in_links: bool) {
    match value {
        serde_json::Value::Object(map) => {
            if in_links {
                for link in map.values_mut() {
                    if let Some(obj) = link.as_object_mut()
                        && let Some(id) = obj.remove("operation_id")
                    {
                        obj.insert("operationId".to_owned(), id);
                    }
                }
            }
            for (key, child) in map.iter_mut() {
                fix_link_keys(child, key == "links");
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| fix_link_keys(v, false)),
        _ => {}
    }
}
