//! The contract of `API.md`, over real HTTP, on every storage backend.

mod common;

use std::collections::HashSet;

use common::{Backend, TestApp, spawn_app, spawn_app_with, unique_email};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_every_backend!(
    register_then_login_returns_token,
    register_normalises_email_and_refuses_taken_email_in_any_case,
    register_reports_every_invalid_field,
    login_answers_the_same_for_unknown_email_and_wrong_password,
    login_is_throttled_per_email_and_per_address,
    forwarded_for_is_ignored_unless_the_proxy_is_trusted,
    me_requires_a_valid_token,
    logout_revokes_the_presented_token_only,
    concurrent_token_checks_answer_each_token_for_itself,
    password_change_revokes_every_earlier_token,
    create_expense_returns_201_with_location_and_exact_amount,
    create_expense_validates_every_field,
    expense_of_another_user_is_not_found,
    list_pages_never_skip_or_repeat_while_expenses_are_added,
    list_filters_by_category_and_dates,
    list_rejects_bad_query_strings,
    summary_groups_categories_case_insensitively_and_exactly,
    summary_is_cached_and_a_write_is_seen_at_once,
    summary_honours_the_date_range,
    users_never_see_each_others_data,
    users_never_see_each_others_data_under_concurrent_load,
    hostile_strings_are_stored_exactly_or_refused,
    mock_import_skips_transactions_already_imported,
    mock_import_validates_its_body,
    framework_rejections_are_json_errors,
    idempotency_key_replays_the_first_response,
    concurrent_retries_with_one_key_create_once,
    retry_after_a_dropped_connection_creates_one_expense,
    request_id_is_echoed_or_generated,
    readiness_reports_database_and_cache,
    concurrent_misses_compute_the_summary_once,
    cached_summary_matches_the_database_under_concurrent_writes,
);

fn amount_of(v: &Value) -> &str {
    v["amount"].as_str().expect("amount is a string")
}

async fn register_then_login_returns_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let reply = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": email, "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    assert_eq!(reply.body["user"]["email"], email.as_str());
    let id = reply.body["user"]["id"]
        .as_str()
        .expect("user id")
        .to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()).ok(),
        Some(7)
    );

    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["user"]["id"], id.as_str());
    let token = login.body["access_token"].as_str().expect("token");
    let me = app.get("/api/auth/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["email"], email.as_str());
    let created_at = me.body["created_at"].as_str().expect("created_at");
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && created_at.ends_with('Z'));
}

async fn register_normalises_email_and_refuses_taken_email_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let local = uuid::Uuid::new_v4().simple().to_string();
    let reply = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": format!("  {local}@Example.COM "), "password": "password1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["user"]["email"], format!("{local}@example.com"));
    let again = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": format!("{}@EXAMPLE.com", local.to_uppercase()), "password": "password2"}),
        )
        .await;
    again.assert_error(409, "conflict");
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": format!("{local}@EXAMPLE.COM"), "password": "password1"}),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "login is case-insensitive on email"
    );
}

async fn register_reports_every_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short"}),
        )
        .await;
    reply.assert_error(422, "validation_failed");
    assert!(reply.body["fields"]["email"].is_string());
    assert!(reply.body["fields"]["password"].is_string());

    let missing = app.post("/api/auth/register", None, json!({})).await;
    missing.assert_error(422, "validation_failed");
    assert_eq!(missing.body["fields"]["email"], "is required");
    assert_eq!(missing.body["fields"]["password"], "is required");

    let wrong_type = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": 5, "password": "x".repeat(129)}),
        )
        .await;
    wrong_type.assert_error(422, "validation_failed");
    assert_eq!(wrong_type.body["fields"]["email"], "must be a string");
    assert!(
        wrong_type.body["fields"]["password"]
            .as_str()
            .is_some_and(|m| m.contains("128"))
    );

    let not_object = app.post("/api/auth/register", None, json!(["a"])).await;
    not_object.assert_error(422, "validation_failed");
}

async fn login_answers_the_same_for_unknown_email_and_wrong_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.register(&email, "the right one").await;
    let wrong = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "the wrong one"}),
        )
        .await;
    wrong.assert_error(401, "unauthorized");
    let unknown = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": unique_email(), "password": "the right one"}),
        )
        .await;
    unknown.assert_error(401, "unauthorized");
    assert_eq!(
        wrong.body, unknown.body,
        "the two failures must be indistinguishable"
    );
}

async fn login_from(app: &TestApp, address: &str, email: &str, password: &str) -> common::Reply {
    let res = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .header("x-forwarded-for", address)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request");
    common::Reply::from_response(res).await
}

fn small_limits(spec: &mut common::Spec) {
    spec.login_limits = finance_server::auth::LoginLimits {
        per_email: 3,
        per_address: 5,
        window: std::time::Duration::from_secs(600),
    };
    spec.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
}

async fn login_is_throttled_per_email_and_per_address(backend: Backend) {
    let app = spawn_app_with(backend, small_limits).await;
    let victim = unique_email();
    app.register(&victim, "the real password").await;

    // Per email: three failures from anywhere, then even the right password waits.
    for address in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        login_from(&app, address, &victim, "guess")
            .await
            .assert_error(401, "unauthorized");
    }
    let blocked = login_from(&app, "198.51.100.4", &victim, "the real password").await;
    blocked.assert_error(429, "rate_limited");
    let retry_after: u64 = blocked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After {retry_after}"
    );

    // Per address: five failures on any emails, then that address waits.
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        login_from(&app, attacker, &unique_email(), "guess")
            .await
            .assert_error(401, "unauthorized");
    }
    let someone = unique_email();
    app.register(&someone, "their password").await;
    login_from(&app, attacker, &someone, "their password")
        .await
        .assert_error(429, "rate_limited");

    // A success elsewhere resets nothing of the attacker's.
    assert_eq!(
        login_from(&app, "192.0.2.10", &someone, "their password")
            .await
            .status,
        StatusCode::OK
    );
    login_from(&app, attacker, &someone, "their password")
        .await
        .assert_error(429, "rate_limited");
}

async fn forwarded_for_is_ignored_unless_the_proxy_is_trusted(backend: Backend) {
    let app = spawn_app_with(backend, |spec| {
        small_limits(spec);
        spec.trusted_proxies.clear();
    })
    .await;
    // Spoofing a new X-Forwarded-For on every try does not escape the address limit.
    for i in 0..5 {
        login_from(&app, &format!("10.9.9.{i}"), &unique_email(), "guess")
            .await
            .assert_error(401, "unauthorized");
    }
    login_from(&app, "10.9.9.200", &unique_email(), "guess")
        .await
        .assert_error(429, "rate_limited");
}

async fn me_requires_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.request(Method::GET, "/api/auth/me", None, None)
        .await
        .assert_error(401, "unauthorized");
    let mut tampered = token.clone();
    let last = tampered.pop().expect("non-empty token");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let reply = app.get("/api/auth/me", &tampered).await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    app.get("/api/auth/me", "not.a.jwt")
        .await
        .assert_error(401, "unauthorized");
    let basic = app
        .http
        .get(format!("{}/api/auth/me", app.base))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/auth/me", &token).await.status, StatusCode::OK);
}

async fn login(app: &TestApp, email: &str, password: &str) -> common::Reply {
    app.post(
        "/api/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

async fn logout_revokes_the_presented_token_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let first = app.register(&email, "password one").await;
    let second = login(&app, &email, "password one").await.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let out = app
        .request(Method::POST, "/api/auth/logout", Some(&first), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.get("/api/auth/me", &first)
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/expenses", &first)
        .await
        .assert_error(401, "unauthorized");
    app.request(Method::POST, "/api/auth/logout", Some(&first), None)
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        app.get("/api/auth/me", &second).await.status,
        StatusCode::OK,
        "other sessions live on"
    );
}

/// Many requests at once, each with its own token: live ones see their own
/// user, logged-out ones are refused, however the checks are shared.
async fn concurrent_token_checks_answer_each_token_for_itself(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        let email = unique_email();
        let live = app.register(&email, "password one").await;
        let gone = login(&app, &email, "password one").await.body["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let out = app
            .request(Method::POST, "/api/auth/logout", Some(&gone), None)
            .await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        tokens.push((live, Some(email.clone())));
        tokens.push((gone, None));
    }
    let checks = (0..240).map(|i| {
        let (token, email) = &tokens[(i * 7) % tokens.len()];
        let app = &app;
        async move {
            let reply = app.get("/api/auth/me", token).await;
            match email {
                Some(email) => {
                    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                    assert_eq!(reply.body["email"], email.as_str());
                }
                None => reply.assert_error(401, "unauthorized"),
            }
        }
    });
    futures::future::join_all(checks).await;
}

async fn password_change_revokes_every_earlier_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let first = app.register(&email, "password one").await;
    let second = login(&app, &email, "password one").await.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let change = |token: String, current: &'static str, new: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/auth/password",
                Some(&token),
                json!({"current_password": current, "new_password": new}),
            )
            .await
        }
    };
    change(first.clone(), "not my password", "password two")
        .await
        .assert_error(401, "unauthorized");
    let short = change(first.clone(), "password one", "short").await;
    short.assert_error(422, "validation_failed");
    assert!(short.body["fields"]["new_password"].is_string());
    assert_eq!(
        app.get("/api/auth/me", &first).await.status,
        StatusCode::OK,
        "failed changes revoke nothing"
    );

    let done = change(first.clone(), "password one", "password two").await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    app.get("/api/auth/me", &first)
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/auth/me", &second)
        .await
        .assert_error(401, "unauthorized");
    login(&app, &email, "password one")
        .await
        .assert_error(401, "unauthorized");
    let fresh = login(&app, &email, "password two").await;
    assert_eq!(fresh.status, StatusCode::OK);
    let token = fresh.body["access_token"].as_str().expect("token");
    assert_eq!(app.get("/api/auth/me", token).await.status, StatusCode::OK);
}

async fn create_expense_returns_201_with_location_and_exact_amount(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let reply = app
        .post(
            "/api/expenses",
            Some(&token),
            json!({"category": "  Groceries ", "amount": 12.5, "description": "Weekly shop ☕ 'quoted'; DROP TABLE expenses;--", "spent_on": "2026-11-20"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let e = &reply.body;
    assert_eq!(e["category"], "Groceries");
    assert_eq!(e["amount"], "12.50");
    assert_eq!(e["spent_on"], "2026-11-20");
    assert_eq!(e["source"], "manual");
    assert_eq!(
        e["description"],
        "Weekly shop ☕ 'quoted'; DROP TABLE expenses;--"
    );
    let id = e["id"].as_str().expect("id");
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/expenses/{id}").as_str())
    );

    let fetched = app.get(&format!("/api/expenses/{id}"), &token).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(&fetched.body, e);

    let string_amount = app
        .post(
            "/api/expenses",
            Some(&token),
            json!({"category": "x", "amount": "1000000000"}),
        )
        .await;
    assert_eq!(string_amount.status, StatusCode::CREATED);
    assert_eq!(amount_of(&string_amount.body), "1000000000.00");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(
        string_amount.body["spent_on"],
        today.as_str(),
        "spent_on defaults to today"
    );
    assert_eq!(string_amount.body["description"], Value::Null);
}

async fn create_expense_validates_every_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let cases = [
        (json!({"category": "", "amount": 1}), "category"),
        (json!({"category": "x".repeat(65), "amount": 1}), "category"),
        (json!({"amount": 1}), "category"),
        (json!({"category": "a", "amount": 12.345}), "amount"),
        (json!({"category": "a", "amount": "12.345"}), "amount"),
        (json!({"category": "a", "amount": 0}), "amount"),
        (json!({"category": "a", "amount": -5}), "amount"),
        (
            json!({"category": "a", "amount": 1_000_000_000.01}),
            "amount",
        ),
        (json!({"category": "a", "amount": "12,50"}), "amount"),
        (json!({"category": "a", "amount": true}), "amount"),
        (json!({"category": "a"}), "amount"),
        (
            json!({"category": "a", "amount": 1, "description": "x".repeat(501)}),
            "description",
        ),
        (
            json!({"category": "a", "amount": 1, "description": 7}),
            "description",
        ),
        (
            json!({"category": "a", "amount": 1, "spent_on": "2026-02-30"}),
            "spent_on",
        ),
        (
            json!({"category": "a", "amount": 1, "spent_on": "yesterday"}),
            "spent_on",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/api/expenses", Some(&token), body.clone()).await;
        reply.assert_error(422, "validation_failed");
        assert!(
            reply.body["fields"][field].is_string(),
            "{body} should fail on {field}: {}",
            reply.body
        );
    }
    let all = app
        .post(
            "/api/expenses",
            Some(&token),
            json!({"category": " ", "amount": "abc", "spent_on": 3}),
        )
        .await;
    let fields = all.body["fields"].as_object().expect("fields");
    assert_eq!(
        fields.len(),
        3,
        "every bad field is reported at once: {}",
        all.body
    );

    let page = app.get("/api/expenses", &token).await;
    assert_eq!(page.body["expenses"], json!([]), "nothing was written");
}

async fn expense_of_another_user_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let expense = app.add(&alice, "Rent", json!("900"), "2026-11-01").await;
    let id = expense["id"].as_str().expect("id");
    app.get(&format!("/api/expenses/{id}"), &bob)
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/expenses/{}", uuid::Uuid::now_v7()), &alice)
        .await
        .assert_error(404, "not_found");
    app.get("/api/expenses/not-a-uuid", &alice)
        .await
        .assert_error(404, "not_found");
}

async fn list_pages_never_skip_or_repeat_while_expenses_are_added(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let mut expected = HashSet::new();
    for day in 1..=7 {
        let e = app
            .add(&token, "Food", json!(day), &format!("2026-10-{day:02}"))
            .await;
        expected.insert(e["id"].as_str().expect("id").to_owned());
    }
    // Two on the same day: ordered by creation, newest first.
    let a = app.add(&token, "Food", json!(1), "2026-10-04").await;
    let b = app.add(&token, "Food", json!(2), "2026-10-04").await;
    expected.insert(a["id"].as_str().expect("id").to_owned());
    expected.insert(b["id"].as_str().expect("id").to_owned());

    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/expenses?limit=3&cursor={c}"),
            None => "/api/expenses?limit=3".to_owned(),
        };
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let items = page.body["expenses"].as_array().expect("expenses").clone();
        assert!(items.len() <= 3);
        seen.extend(items);
        pages += 1;
        // New expenses arrive between pages; they are newer than the cursor.
        app.add(&token, "Food", json!(5), "2026-11-30").await;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<String> = seen
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 9, "no expense repeated");
    assert_eq!(
        ids.iter().cloned().collect::<HashSet<_>>(),
        expected,
        "no expense skipped"
    );
    let keys: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            (
                e["spent_on"].as_str().expect("date").to_owned(),
                e["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted, "newest first");
    assert_eq!(
        ids[3],
        b["id"].as_str().expect("id"),
        "later of two same-day expenses first"
    );
    assert_eq!(ids[4], a["id"].as_str().expect("id"));
}

async fn list_filters_by_category_and_dates(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(1), "2026-01-10").await;
    app.add(&token, "FOOD", json!(2), "2026-02-10").await;
    app.add(&token, "Travel", json!(3), "2026-02-11").await;
    app.add(&token, "food", json!(4), "2026-03-10").await;
    let page = app
        .get(
            "/api/expenses?category=Food&from=2026-02-01&to=2026-03-10",
            &token,
        )
        .await;
    let amounts: Vec<&str> = page.body["expenses"]
        .as_array()
        .expect("list")
        .iter()
        .map(amount_of)
        .collect();
    assert_eq!(amounts, ["4.00", "2.00"]);
    let all = app.get("/api/expenses?to=2026-02-10", &token).await;
    assert_eq!(all.body["expenses"].as_array().map(Vec::len), Some(2));
    assert_eq!(all.body["next_cursor"], Value::Null);
}

async fn list_rejects_bad_query_strings(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "cursor=bogus",
        "from=2026-13-01",
        "to=tomorrow",
    ] {
        app.get(&format!("/api/expenses?{query}"), &token)
            .await
            .assert_error(400, "bad_request");
    }
    app.get("/api/expenses/summary?from=nope", &token)
        .await
        .assert_error(400, "bad_request");
    let max = app.get("/api/expenses?limit=200", &token).await;
    assert_eq!(max.status, StatusCode::OK);
    // An empty range is not an error: nothing falls in it.
    app.add(&token, "Food", json!(1), "2026-05-01").await;
    let empty = app
        .get("/api/expenses?from=2026-05-02&to=2026-05-01", &token)
        .await;
    assert_eq!(empty.body["expenses"], json!([]));
    let empty = app.summary(&token, "?from=2026-05-02&to=2026-05-01").await;
    assert_eq!(empty.body["total"], "0.00");
}

async fn summary_groups_categories_case_insensitively_and_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    for _ in 0..10 {
        app.add(&token, "Coffee", json!(0.1), "2026-11-01").await;
    }
    app.add(&token, "groceries", json!("20.05"), "2026-11-02")
        .await;
    app.add(&token, "GROCERIES", json!(0.29), "2026-11-03")
        .await;
    app.add(&token, "Rent", json!(0.01), "2026-11-03").await;
    let s = app.summary(&token, "").await.body;
    assert_eq!(s["total"], "21.35");
    assert_eq!(s["count"], 13);
    assert_eq!(s["from"], Value::Null);
    assert_eq!(
        s["categories"],
        json!([
            {"category": "groceries", "total": "20.34", "count": 2},
            {"category": "Coffee", "total": "1.00", "count": 10},
            {"category": "Rent", "total": "0.01", "count": 1},
        ])
    );
}

async fn summary_is_cached_and_a_write_is_seen_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(10), "2026-11-01").await;
    let first = app.summary(&token, "").await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    let second = app.summary(&token, "").await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(first.body, second.body);
    app.add(&token, "Food", json!(5), "2026-11-02").await;
    let after = app.summary(&token, "").await;
    assert_eq!(after.header("x-cache"), Some("miss"));
    assert_eq!(after.body["total"], "15.00");
    let imported = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"count": 3, "seed": 9}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED);
    let after_import = app.summary(&token, "").await;
    assert_eq!(
        after_import.body["count"], 5,
        "an import is seen at once too"
    );
}

async fn summary_honours_the_date_range(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(1), "2026-01-31").await;
    app.add(&token, "Food", json!(2), "2026-02-01").await;
    app.add(&token, "Fun", json!(4), "2026-02-28").await;
    app.add(&token, "Food", json!(8), "2026-03-01").await;
    let feb = app
        .summary(&token, "?from=2026-02-01&to=2026-02-28")
        .await
        .body;
    assert_eq!(feb["total"], "6.00");
    assert_eq!(feb["count"], 2);
    assert_eq!(feb["from"], "2026-02-01");
    assert_eq!(feb["to"], "2026-02-28");
    assert_eq!(
        feb["categories"][0],
        json!({"category": "Fun", "total": "4.00", "count": 1})
    );
    let since = app.summary(&token, "?from=2026-02-28").await.body;
    assert_eq!(since["total"], "12.00");
    let empty = app.summary(&token, "?from=2030-01-01").await.body;
    assert_eq!(empty["total"], "0.00");
    assert_eq!(empty["categories"], json!([]));
}

async fn users_never_see_each_others_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    app.add(&alice, "Food", json!(10), "2026-11-01").await;
    app.post(
        "/api/imports/mock",
        Some(&alice),
        json!({"count": 5, "seed": 1}),
    )
    .await;
    let bob_list = app.get("/api/expenses", &bob).await;
    assert_eq!(bob_list.body["expenses"], json!([]));
    let bob_summary = app.summary(&bob, "").await;
    assert_eq!(bob_summary.body["count"], 0);
    // The same seed is a different bank account for another user: imported, not skipped.
    let bob_import = app
        .post(
            "/api/imports/mock",
            Some(&bob),
            json!({"count": 5, "seed": 1}),
        )
        .await;
    assert_eq!(bob_import.body["imported"], 5);
}

async fn users_never_see_each_others_data_under_concurrent_load(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let users: Vec<String> = futures::future::join_all((0..6).map(|_| app.new_user())).await;
    let tasks = users.iter().enumerate().map(|(u, token)| {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            let category = format!("Only-user-{u}");
            for i in 0..12 {
                app.add(
                    &token,
                    &category,
                    json!(u + 1),
                    &format!("2026-10-{:02}", i + 1),
                )
                .await;
                let s = app.summary(&token, "").await.body;
                let categories = s["categories"].as_array().expect("categories");
                assert_eq!(
                    categories.len(),
                    1,
                    "user {u} sees only their category: {s}"
                );
                assert_eq!(categories[0]["category"], category.as_str());
                assert_eq!(s["count"], i + 1);
                let list = app.get("/api/expenses?limit=200", &token).await.body;
                for e in list["expenses"].as_array().expect("list") {
                    assert_eq!(
                        e["category"],
                        category.as_str(),
                        "user {u} sees only their rows"
                    );
                }
            }
            app.get("/api/expenses?limit=1", &token).await.body["expenses"][0]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
    });
    let ids: Vec<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    // Every user's expense is a 404 to every other user.
    for (u, token) in users.iter().enumerate() {
        for (v, id) in ids.iter().enumerate() {
            let reply = app.get(&format!("/api/expenses/{id}"), token).await;
            if u == v {
                assert_eq!(reply.status, StatusCode::OK);
            } else {
                reply.assert_error(404, "not_found");
            }
        }
    }
}

async fn hostile_strings_are_stored_exactly_or_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let hostile = [
        "Robert'); DROP TABLE expenses;--".to_owned(),
        "\" OR 1=1 --".to_owned(),
        "%_% LIKE".to_owned(),
        "ünïcödé 🧾 中文 עברית".to_owned(),
        "zero\u{200b}width\u{feff}".to_owned(),
        "tab\tand\nnewline".to_owned(),
        "bell\u{7}".to_owned(),
        "nul\u{0}byte".to_owned(),
        "esc\u{1b}[31m".to_owned(),
        "x".repeat(500),
        "y".repeat(501),
        "é".repeat(64),
        "ê".repeat(65),
        "  padded  ".to_owned(),
        "\u{85}next-line".to_owned(),
    ];
    for text in &hostile {
        for field in ["category", "description"] {
            let mut body = json!({"category": "Safe", "amount": 1, "description": "safe"});
            body[field] = json!(text);
            let reply = app.post("/api/expenses", Some(&token), body).await;
            match reply.status {
                StatusCode::CREATED => {
                    let expected = if field == "category" {
                        text.trim()
                    } else {
                        text.as_str()
                    };
                    assert_eq!(
                        reply.body[field], expected,
                        "{field} {text:?} round-trips exactly"
                    );
                    let id = reply.body["id"].as_str().expect("id");
                    let fetched = app.get(&format!("/api/expenses/{id}"), &token).await;
                    assert_eq!(fetched.body[field], expected);
                }
                StatusCode::UNPROCESSABLE_ENTITY => {
                    assert!(
                        reply.body["fields"][field].is_string(),
                        "{field} {text:?}: {}",
                        reply.body
                    );
                }
                other => panic!("{field} {text:?} answered {other}: {}", reply.body),
            }
        }
        let reply = app
            .get(
                &format!("/api/expenses?category={}", urlencode(text)),
                &token,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "filtering by {text:?}");
        let reply = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": format!("{text}@example.com"), "password": text}),
            )
            .await;
        assert!(
            [401, 422, 429].contains(&reply.status.as_u16()),
            "login with {text:?} answered {}",
            reply.status
        );
    }
    // A password of any characters works, exactly as typed.
    let email = unique_email();
    let password = "pässwörd'; --\u{0}🧾";
    app.register(&email, password).await;
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    // Still one table, still working.
    assert_eq!(app.summary(&token, "").await.status, StatusCode::OK);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn mock_import_skips_transactions_already_imported(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let first = app
        .post("/api/imports/mock", Some(&token), json!({"seed": 42}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["imported"], 20, "count defaults to 20");
    assert_eq!(first.body["skipped"], 0);
    let expenses = first.body["expenses"].as_array().expect("expenses");
    assert_eq!(expenses.len(), 20);
    let today = chrono::Utc::now().date_naive();
    for e in expenses {
        assert_eq!(e["source"], "mock_bank");
        let day: chrono::NaiveDate = e["spent_on"]
            .as_str()
            .expect("date")
            .parse()
            .expect("a date");
        assert!(
            (0..30).contains(&(today - day).num_days()),
            "within the last 30 days"
        );
    }
    let again = app
        .post("/api/imports/mock", Some(&token), json!({"seed": 42}))
        .await;
    assert_eq!(
        (
            again.body["imported"].clone(),
            again.body["skipped"].clone()
        ),
        (json!(0), json!(20))
    );
    assert_eq!(again.body["expenses"], json!([]));
    let more = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"seed": 42, "count": 25}),
        )
        .await;
    assert_eq!(
        (more.body["imported"].clone(), more.body["skipped"].clone()),
        (json!(5), json!(20))
    );
    let summary = app.summary(&token, "").await.body;
    assert_eq!(summary["count"], 25);
    let random = app.post("/api/imports/mock", Some(&token), json!({})).await;
    assert_eq!(random.body["imported"], 20, "no seed: a fresh batch");
}

async fn mock_import_validates_its_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    for body in [
        json!({"count": 0}),
        json!({"count": 1001}),
        json!({"count": "5"}),
        json!({"seed": 1.5}),
        json!({"count": 2.5}),
    ] {
        let reply = app
            .post("/api/imports/mock", Some(&token), body.clone())
            .await;
        reply.assert_error(422, "validation_failed");
    }
    let whole = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"count": 2.0, "seed": 7.0}),
        )
        .await;
    assert_eq!(whole.body["imported"], 2, "2.0 is the integer 2");
    let max = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"count": 1000, "seed": -3}),
        )
        .await;
    assert_eq!(max.body["imported"], 1000);
    assert_eq!(app.summary(&token, "").await.body["count"], 1002);
}

async fn post_with_key(
    app: &TestApp,
    token: &str,
    path: &str,
    key: &str,
    body: Value,
) -> common::Reply {
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    common::Reply::from_response(res).await
}

async fn count_expenses(app: &TestApp, token: &str) -> usize {
    app.get("/api/expenses?limit=200", token).await.body["expenses"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn idempotency_key_replays_the_first_response(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let body = json!({"category": "Rent", "amount": "900.00", "spent_on": "2026-11-01"});
    let first = post_with_key(&app, &token, "/api/expenses", "rent-2026-11", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Same body, other formatting and key order: the same request.
    let reordered = json!({"spent_on": "2026-11-01", "amount": "900.00", "category": "Rent"});
    let again = post_with_key(&app, &token, "/api/expenses", "rent-2026-11", reordered).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the first response, replayed");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(count_expenses(&app, &token).await, 1);

    let other = post_with_key(
        &app,
        &token,
        "/api/expenses",
        "rent-2026-11",
        json!({"category": "Rent", "amount": 901}),
    )
    .await;
    other.assert_error(422, "validation_failed");
    assert!(other.body["fields"]["Idempotency-Key"].is_string());
    assert_eq!(count_expenses(&app, &token).await, 1);

    // Keys belong to their user.
    let bob = app.new_user().await;
    let bobs = post_with_key(&app, &bob, "/api/expenses", "rent-2026-11", body.clone()).await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_ne!(bobs.body["id"], first.body["id"]);

    // An import replays its counts instead of reporting everything skipped.
    let import = json!({"count": 5, "seed": 77});
    let imported = post_with_key(&app, &token, "/api/imports/mock", "sync-1", import.clone()).await;
    assert_eq!(imported.body["imported"], 5);
    let replayed = post_with_key(&app, &token, "/api/imports/mock", "sync-1", import).await;
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.body, imported.body);
    assert_eq!(count_expenses(&app, &token).await, 6);

    for bad in ["", &"k".repeat(256), "naïve"] {
        let res = app
            .http
            .post(format!("{}/api/expenses", app.base))
            .bearer_auth(&token)
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).expect("header"),
            )
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "key {bad:?}");
    }
    assert_eq!(count_expenses(&app, &token).await, 6);
}

async fn concurrent_retries_with_one_key_create_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let body = json!({"category": "Travel", "amount": 120});
    let replies = futures::future::join_all(
        (0..12).map(|_| post_with_key(&app, &token, "/api/expenses", "one-trip", body.clone())),
    )
    .await;
    let ids: HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry answered with the one expense");
    assert_eq!(count_expenses(&app, &token).await, 1);
}

async fn retry_after_a_dropped_connection_creates_one_expense(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let body = r#"{"category": "Books", "amount": "12.99"}"#;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // The client sends the request and vanishes before reading the answer.
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /api/expenses HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: book-1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let retry = post_with_key(
        &app,
        &token,
        "/api/expenses",
        "book-1",
        serde_json::from_str(body).expect("json"),
    )
    .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    let retry_again = post_with_key(
        &app,
        &token,
        "/api/expenses",
        "book-1",
        serde_json::from_str(body).expect("json"),
    )
    .await;
    assert_eq!(retry_again.body["id"], retry.body["id"]);
    assert_eq!(
        count_expenses(&app, &token).await,
        1,
        "one expense, however many tries"
    );
}

async fn framework_rejections_are_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let url = |p: &str| format!("{}{p}", app.base);
    let as_reply = |res: reqwest::Response| async move { common::Reply::from_response(res).await };
    as_reply(app.http.get(url("/nowhere")).send().await.expect("send"))
        .await
        .assert_error(404, "not_found");
    as_reply(
        app.http
            .get(url("/api/nothing/here"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send"),
    )
    .await
    .assert_error(404, "not_found");
    let wrong_method = as_reply(
        app.http
            .delete(url("/api/expenses"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    wrong_method.assert_error(405, "method_not_allowed");
    assert!(
        wrong_method
            .header("allow")
            .is_some_and(|a| a.contains("POST"))
    );
    as_reply(
        app.http
            .get(url("/api/expenses"))
            .send()
            .await
            .expect("send"),
    )
    .await
    .assert_error(401, "unauthorized");
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = app
            .http
            .post(url("/api/expenses"))
            .bearer_auth(&token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    as_reply(
        post(r#"{"category": "a", "amount": 1"#, Some("application/json"))
            .await
            .expect("send"),
    )
    .await
    .assert_error(400, "bad_request");
    as_reply(
        post(r#"{"category": "a", "amount": 1}"#, None)
            .await
            .expect("send"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    as_reply(
        post(r#"{"category": "a", "amount": 1}"#, Some("text/plain"))
            .await
            .expect("send"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    let ok = post(
        r#"{"category": "a", "amount": 1}"#,
        Some("application/json; charset=utf-8"),
    )
    .await
    .expect("send");
    assert_eq!(ok.status(), StatusCode::CREATED);
    let big = format!(
        r#"{{"category": "a", "amount": 1, "description": "{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let too_big = app
        .http
        .post(url("/api/expenses"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    as_reply(too_big)
        .await
        .assert_error(413, "payload_too_large");
}

async fn request_id_is_echoed_or_generated(backend: Backend) {
    let app = spawn_app(backend).await;
    let echoed = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("send");
    assert_eq!(
        echoed
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-123")
    );
    let a = app.request(Method::GET, "/healthz", None, None).await;
    let b = app.request(Method::GET, "/nowhere", None, None).await;
    let (a, b) = (
        a.header("x-request-id").map(str::to_owned),
        b.header("x-request-id").map(str::to_owned),
    );
    assert!(
        a.is_some() && b.is_some() && a != b,
        "each request gets its own id"
    );
}

async fn readiness_reports_database_and_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "up");
    let cache = match backend {
        Backend::Sqlite => "memory",
        Backend::Postgres | Backend::Mysql => "up",
    };
    assert_eq!(ready.body["cache"], cache);
}

async fn concurrent_misses_compute_the_summary_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!(3), "2026-11-01").await;
    let before = app.state.summaries.computations();
    let replies =
        futures::future::join_all((0..50).map(|_| app.summary(&token, "?from=2026-01-01"))).await;
    assert_eq!(
        app.state.summaries.computations() - before,
        1,
        "one computation for 50 concurrent misses"
    );
    for r in &replies {
        assert_eq!(r.body["total"], "3.00");
    }
}

async fn cached_summary_matches_the_database_under_concurrent_writes(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let app = Arc::new(spawn_app(backend).await);
    let token = Arc::new(app.new_user().await);
    let acked = Arc::new(AtomicU64::new(0));
    let writers = (0..6).map(|w| {
        let (app, token, acked) = (app.clone(), token.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0..15u64 {
                let category = ["Food", "food", "Travel", "Rent"][((w + i) % 4) as usize];
                let cents = 1 + (w * 100 + i) % 997;
                app.add(
                    &token,
                    category,
                    json!(format!("{}.{:02}", cents / 100, cents % 100)),
                    "2026-11-10",
                )
                .await;
                acked.fetch_add(1, Ordering::SeqCst);
                // A read after one's own write never shows the state before it.
                let seen_at_least = acked.load(Ordering::SeqCst);
                let s = app.summary(&token, "").await;
                assert!(s.body["count"].as_u64().expect("count") >= seen_at_least);
            }
        })
    });
    let readers = (0..3).map(|_| {
        let (app, token, acked) = (app.clone(), token.clone(), acked.clone());
        tokio::spawn(async move {
            for _ in 0..30 {
                let floor = acked.load(Ordering::SeqCst);
                let s = app.summary(&token, "").await;
                assert!(
                    s.body["count"].as_u64().expect("count") >= floor,
                    "stale summary served"
                );
            }
        })
    });
    for task in writers.chain(readers).collect::<Vec<_>>() {
        task.await.expect("task succeeded");
    }
    let cached = app.summary(&token, "").await;
    let cached = if cached.header("x-cache") == Some("hit") {
        cached
    } else {
        app.summary(&token, "").await
    };
    assert_eq!(cached.header("x-cache"), Some("hit"));
    let me = app.get("/api/auth/me", &token).await;
    let user_id = me.body["id"].as_str().expect("id").parse().expect("uuid");
    let truth = app
        .state
        .store
        .summary(user_id, 0, None, None)
        .await
        .expect("database summary");
    assert_eq!(cached.body, serde_json::to_value(&truth).expect("json"));
    assert_eq!(truth.count, 90);
    let list_total: i64 = {
        let mut sum = 0;
        let mut cursor = String::new();
        loop {
            let page = app
                .get(&format!("/api/expenses?limit=200&cursor={cursor}"), &token)
                .await;
            for e in page.body["expenses"].as_array().expect("list") {
                let m: finance_shared::Money = amount_of(e).parse().expect("money");
                sum += m.minor();
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        sum
    };
    assert_eq!(truth.total.minor(), list_total, "rollup equals the rows");
}

#[allow(dead_code)] // Keeps TestApp's import used when the macro's list changes.
fn _uses(_: &TestApp) {}
