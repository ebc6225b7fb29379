//! The workflow builder page: GET / and GET /ui/{file}. Every asset is embedded in the
//! binary (plain HTML, CSS and JavaScript modules from ui/, no build step), served with its
//! content type and a Content-Security-Policy that allows nothing but this origin, so the
//! page can make no request anywhere but the engine. The page itself uses only /api/v1.

use super::ApiError;
use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Only this origin: no inline script or style, no other host, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// `(file name, content type, bytes)` of every file the page may load.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../ui/app.css")),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/dom.js"),
    ),
    (
        "list.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/list.js"),
    ),
    (
        "editor.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/editor.js"),
    ),
    (
        "conditions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/conditions.js"),
    ),
    (
        "actions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/actions.js"),
    ),
    (
        "testpanel.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/testpanel.js"),
    ),
    (
        "runs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/runs.js"),
    ),
    (
        "pickers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/pickers.js"),
    ),
    (
        "crm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/crm.js"),
    ),
    (
        "diff.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/diff.js"),
    ),
    (
        "examples.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/examples.js"),
    ),
    (
        "guards.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/guards.js"),
    ),
    (
        "tree.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/tree.js"),
    ),
    (
        "journey.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/journey.js"),
    ),
    (
        "flow.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/flow.js"),
    ),
    (
        "words.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/words.js"),
    ),
    (
        "records.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/records.js"),
    ),
    (
        "events.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/events.js"),
    ),
    (
        "tasks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/tasks.js"),
    ),
    (
        "teams.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/teams.js"),
    ),
    (
        "activity.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/activity.js"),
    ),
    (
        "customers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/customers.js"),
    ),
    (
        "eventform.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/eventform.js"),
    ),
    (
        "customerpick.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/customerpick.js"),
    ),
    (
        "sentences.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/sentences.js"),
    ),
    (
        "results.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/results.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/charts.js"),
    ),
    (
        "contact.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/contact.js"),
    ),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../ui/favicon.svg")),
];

/// The two routes: the page at `/`, its assets under `/ui/`. Outside the token-protected
/// API scope: the page holds no data; it asks for the token when the API answers 401.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/ui/{file}", web::get().to(asset));
}

fn serve(name: &str) -> Option<HttpResponse> {
    if let Some(found) = from_disk(name) {
        return found;
    }
    let (_, content_type, body) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    Some(respond(content_type, *body))
}

fn respond(content_type: &str, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // The assets change only with the binary; revalidating is cheap and never stale.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// Debug builds only: with `WFE_UI_DIR` set, the page's files are read from that folder on
/// every request, so the builder can be worked on without rebuilding the binary. Release
/// builds ignore it and serve only what is embedded. A name must be a plain file name
/// with a known extension; `None` means "not in dev mode", `Some(None)` "no such file".
fn from_disk(name: &str) -> Option<Option<HttpResponse>> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let dir = std::env::var_os("WFE_UI_DIR")?;
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    let content_type = match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => return Some(None),
    };
    if !plain {
        return Some(None);
    }
    let body = std::fs::read(std::path::Path::new(&dir).join(name)).ok();
    Some(body.map(|body| respond(content_type, body)))
}

async fn index() -> Result<HttpResponse, ApiError> {
    serve("index.html").ok_or_else(|| ApiError::not_found("no index.html in WFE_UI_DIR".to_owned()))
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&file).ok_or_else(|| ApiError::not_found(format!("no asset {:?}", file.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as atest, App};

    #[actix_web::test]
    async fn serves_every_asset_with_its_type_and_the_csp() {
        let app = atest::init_service(App::new().configure(routes)).await;
        for (name, content_type, body) in ASSETS {
            let uri = if *name == "index.html" {
                "/".to_owned()
            } else {
                format!("/ui/{name}")
            };
            let resp = atest::call_service(&app, atest::TestRequest::get().uri(&uri).to_request()).await;
            assert_eq!(resp.status(), 200, "{uri}");
            assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), content_type, "{uri}");
            assert_eq!(
                resp.headers().get(header::CONTENT_SECURITY_POLICY).unwrap(),
                CSP,
                "{uri}"
            );
            assert_eq!(&atest::read_body(resp).await[..], *body, "{uri}");
        }
        let resp = atest::call_service(&app, atest::TestRequest::get().uri("/ui/nope.js").to_request()).await;
        assert_eq!(resp.status(), 404);
        let resp = atest::call_service(&app, atest::TestRequest::get().uri("/ui/..%2FCargo.toml").to_request()).await;
        assert_eq!(resp.status(), 404);
    }

    /// Every module a page file imports and every file index.html links is embedded.
    #[test]
    fn every_referenced_file_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        for (name, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap();
            for quote in ['"', '\''] {
                for piece in text.split(quote).skip(1).step_by(2) {
                    let target = piece.strip_prefix("./").or_else(|| piece.strip_prefix("/ui/"));
                    if let Some(target) = target.filter(|t| !t.contains(' ') && t.contains('.')) {
                        assert!(
                            names.contains(&target),
                            "{name} refers to {piece}, which is not embedded"
                        );
                    }
                }
            }
            for remote in [
                "src=\"http",
                "href=\"http",
                "from \"http",
                "from 'http",
                "url(http",
                "import(\"http",
            ] {
                assert!(
                    !text.contains(remote),
                    "{name} loads something from another origin ({remote})"
                );
            }
        }
    }
}
