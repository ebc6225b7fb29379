//! Issue 22, what a token holder sends: the API in process on a fresh SQLite file (or
//! PostgreSQL with WFE_TEST_DATABASE_URL), with scoped tokens on.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::{test as atest, App};
use serde_json::{json, Value};
use workflow_engine::api::{self, auth::required_scope, Auth};
use workflow_engine::settings::{Scope, TokenConfig};
use workflow_engine::storage::Database;

fn token(name: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: Some(format!("t-{name}")),
        token_sha256: None,
        scopes: scopes.to_vec(),
    }
}

/// Every way of writing `path` that a router may still match: as is, each letter of it
/// percent-encoded on its own, every letter encoded, and in other cases.
fn spellings(path: &str) -> Vec<String> {
    let encode = |c: char| format!("%{:02X}", c as u32);
    let mut out = vec![path.to_owned()];
    for (i, c) in path.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()) {
        out.push(format!("{}{}{}", &path[..i], encode(c), &path[i + 1..]));
        out.push(format!("{}{}{}", &path[..i], encode(c).to_lowercase(), &path[i + 1..]));
    }
    out.push(
        path.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    encode(c)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    );
    out.push(path.to_uppercase());
    out.push(
        path.char_indices()
            .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c })
            .collect(),
    );
    out
}

async fn answer<B: MessageBody>(response: ServiceResponse<B>) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = atest::read_body(response).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Finding 2: scopes were checked on the raw path and routes matched on the decoded one, so
/// a write token reached the admin routes (run retry and cancel) and the events route by
/// percent-encoding one letter. Every route of the OpenAPI document, in every spelling,
/// with every token that lacks its scope: refused (403), or matched by no route at all
/// (404 or 405 with no body); never answered by the route's handler.
#[actix_rt::test]
async fn no_spelling_of_a_route_gets_past_its_scope() {
    let test = common::fresh().await;
    let tokens = [
        token("reader", &[Scope::Read]),
        token("author", &[Scope::Read, Scope::Write]),
        token("producer", &[Scope::Events]),
        token("ops", &[Scope::Admin]),
    ];
    let auth = Auth::new("", &tokens, false).unwrap();
    let state = common::api_state(&test.db);
    let app = atest::init_service(App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))).await;

    let request = |method: Method, path: &str, token: &str| {
        let mut req = atest::TestRequest::default()
            .method(method.clone())
            .uri(path)
            .insert_header(("Authorization", format!("Bearer {token}")));
        if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            req = req.set_json(json!({}));
        }
        req.to_request()
    };
    let (status, document) = answer(
        app.call(request(Method::GET, "/api/v1/openapi.json", "t-reader"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{document}");
    let mut routes = Vec::new();
    for (pattern, operations) in document["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                _ => continue,
            };
            routes.push((method, pattern.clone()));
        }
    }
    assert!(routes.len() > 40, "{routes:?}");

    let mut checked = 0;
    for (method, pattern) in &routes {
        if !pattern.starts_with("/api/v1/") {
            continue; // health, readiness and metrics are open
        }
        let needed = required_scope(method, pattern);
        let path = pattern.replace("{id}", "1").replace("{name}", "kyc");
        for spelling in spellings(&path) {
            for t in &tokens {
                if t.scopes.contains(&needed) || t.scopes.contains(&Scope::Admin) {
                    continue;
                }
                let token = t.token.as_deref().unwrap();
                let response = app.call(request(method.clone(), &spelling, token)).await;
                let (status, body) = match response {
                    Ok(r) => answer(r).await,
                    Err(e) => {
                        answer(ServiceResponse::from_err(
                            e,
                            atest::TestRequest::default().to_http_request(),
                        ))
                        .await
                    }
                };
                let refused = status == 403 && body["error"]["code"] == "forbidden";
                let unrouted = (status == 404 || status == 405) && body.is_null();
                assert!(
                    refused || unrouted,
                    "{method} {spelling} with {} (needs {}): {status} {body}",
                    t.name,
                    needed.name()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");

    // The admin token still reaches every route, in the plain and the encoded spelling.
    for path in ["/api/v1/runs/1/retry", "/api/v1/r%75ns/1/retry"] {
        let response = app.call(request(Method::POST, path, "t-ops")).await.unwrap();
        let (status, body) = answer(response).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("not_found")),
            "{path}: {body}"
        );
    }
    test.finish().await;
}

/// Finding 7: a custom field value had no cap of its own, so an import stored a 15 MiB
/// field (under the import's 16 MiB body cap) and templates then copied it into every
/// message. Every customer write path now refuses a value over the cap, with its pointer;
/// nothing of a refused customer is stored.
#[actix_rt::test]
async fn customer_writes_cap_each_custom_field() {
    let test = common::fresh().await;
    let auth = Auth::new("", &[token("author", &[Scope::Read, Scope::Write])], false).unwrap();
    let state = common::api_state(&test.db);
    let app = atest::init_service(App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))).await;
    let big = "x".repeat(900 * 1024);

    let put = atest::TestRequest::put()
        .uri("/api/v1/customers/5")
        .insert_header(("Authorization", "Bearer t-author"))
        .set_json(json!({"first_name": "Ana", "custom": {"notes": big}}))
        .to_request();
    let (status, body) = answer(app.call(put).await.unwrap()).await;
    assert_eq!(status, 422, "{}", short(&body));
    assert_eq!(body["error"]["path"], "/custom/notes", "{}", short(&body));

    let line = json!({"id": 6, "first_name": "Bo", "custom": {"notes": "y".repeat(3 << 20)}}).to_string();
    let import = atest::TestRequest::post()
        .uri("/api/v1/customers/import")
        .insert_header(("Authorization", "Bearer t-author"))
        .insert_header(("Content-Type", "application/x-ndjson"))
        .set_payload(line)
        .to_request();
    let (status, body) = answer(app.call(import).await.unwrap()).await;
    assert_eq!(status, 200, "{}", short(&body));
    assert_eq!(body["upserted"], 0, "{}", short(&body));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/custom/notes"),
        "{}",
        short(&body)
    );

    for id in [5, 6] {
        let get = atest::TestRequest::get()
            .uri(&format!("/api/v1/customers/{id}"))
            .insert_header(("Authorization", "Bearer t-author"))
            .to_request();
        let (status, body) = answer(app.call(get).await.unwrap()).await;
        assert_eq!(status, 404, "customer {id} was not stored: {}", short(&body));
    }
    test.finish().await;
}

/// Poison data through the API: PostgreSQL refuses a `\u0000` that JSON allows. That is
/// no outage, so the caller gets a 422 it will not retry, not a 503 it would.
#[actix_rt::test]
#[cfg_attr(not(wfe_postgres), ignore = "needs PostgreSQL in WFE_TEST_DATABASE_URL")]
async fn data_the_database_refuses_is_a_422_not_an_outage() {
    let test = common::fresh().await;
    let auth = Auth::new("", &[token("author", &[Scope::Read, Scope::Write])], false).unwrap();
    let state = common::api_state(&test.db);
    let app = atest::init_service(App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))).await;
    let put = atest::TestRequest::put()
        .uri("/api/v1/customers/8")
        .insert_header(("Authorization", "Bearer t-author"))
        .set_json(json!({"first_name": "nul\u{0}here"}))
        .to_request();
    let (status, body) = answer(app.call(put).await.unwrap()).await;
    assert_eq!(status, 422, "{}", short(&body));
    assert_eq!(body["error"]["code"], "refused_data", "{}", short(&body));
    test.finish().await;
}

/// The start of a body, for assertion messages about bodies that may be megabytes.
fn short(body: &Value) -> String {
    body.to_string().chars().take(300).collect()
}

/// A real server on a free port with `timeout` as its request timeout, for tests that
/// need a socket (a body that stops half way).
async fn serve(db: &Database, timeout: std::time::Duration) -> (String, actix_web::dev::ServerHandle) {
    let auth = Auth::new("", &[token("author", &[Scope::Read, Scope::Write])], false).unwrap();
    let state = common::api_state(db);
    let server = actix_web::HttpServer::new(move || {
        let (state, auth) = (state.clone(), auth.clone());
        App::new()
            .app_data(actix_web::web::Data::new(api::RequestTimeout(timeout)))
            .configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0].to_string();
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (addr, handle)
}

/// Sends an import's head announcing `length` bytes and `sent` of them, then keeps the
/// connection open.
async fn partial_import(addr: &str, length: usize, sent: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/customers/import HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer t-author\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

/// The status line's code of what `stream` answers.
async fn status_of(stream: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 512];
    let n = stream.read(&mut buffer).await.unwrap();
    let text = String::from_utf8_lossy(&buffer[..n]);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Bounded reads: a body that stops half way held its request open for as long as the
/// sender liked (actix-http times out the head only); now the request gets 408 once the
/// request timeout passes.
#[actix_rt::test]
async fn a_body_that_stops_half_way_gets_408() {
    let test = common::fresh().await;
    let (addr, server) = serve(&test.db, std::time::Duration::from_millis(300)).await;
    let mut stream = partial_import(&addr, 1000, b"{\"id\": 1,").await;
    assert_eq!(status_of(&mut stream).await, 408);
    server.stop(false).await;
    test.finish().await;
}

/// Bounded reads: each import may buffer 16 MiB, so only two are read at once; a third
/// gets 429 with Retry-After, and once one of the two is gone another is taken.
#[actix_rt::test]
async fn at_most_two_imports_are_read_at_once() {
    let test = common::fresh().await;
    let (addr, server) = serve(&test.db, std::time::Duration::from_secs(30)).await;
    let first = partial_import(&addr, 1000, b"{").await;
    let second = partial_import(&addr, 1000, b"{").await;
    // Both are being read once a third is refused; poll until then.
    let mut refused = false;
    for _ in 0..100 {
        let mut third = partial_import(&addr, 2, b"{}").await;
        if status_of(&mut third).await == 429 {
            refused = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "a third import while two are read is refused");
    drop((first, second));
    let mut taken = false;
    for _ in 0..100 {
        let line = b"{\"id\": 9}";
        let mut next = partial_import(&addr, line.len(), line).await;
        if status_of(&mut next).await == 200 {
            taken = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(taken, "an import is taken again once the others are gone");
    server.stop(false).await;
    test.finish().await;
}
