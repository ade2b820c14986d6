//! The error answers of the API, documented once. Each handler's `responses(...)` names its
//! success, one of the shared error sets below, and only the answers that are its own (a 409
//! that says which conflict). What every operation of a kind can answer, [`SharedResponses`]
//! adds to the document: 400 for a bad path parameter, query or body, 401 without a valid token,
//! 400 and 429 for a `?wait=` long poll. Every error's body is `ErrorBody` (`ApiError` makes it).
use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, Modify};

/// One documented error answer: its status code and what causes it.
pub type ErrorAnswer = (u16, &'static str);

/// The server runs without libvirt.
pub const HOSTING_OFF: ErrorAnswer = (503, "Hosting is off on this server: it runs without libvirt (`hosting_unavailable`)");
/// A hosting the caller may not see is answered as one that does not exist.
pub const NOT_FOUND: ErrorAnswer = (404, "Not found (or not yours)");
/// `/host` acts on the caller's first hosting.
pub const NO_HOSTING: ErrorAnswer = (404, "You have no hosting (yet)");
/// An operation the hosting's state does not allow, or one while another runs.
pub const BUSY: ErrorAnswer = (409, "Not possible in this state (`conflict`), or busy with another operation (`busy`)");
pub const OVER_QUOTA: ErrorAnswer = (403, "Over quota (`quota_exceeded`)");
pub const HOLDS_AS_MANY: ErrorAnswer = (403, "The account holds as many of these as it may (`quota_exceeded`); remove one first");
pub const INVALID_SITE: ErrorAnswer = (422, "Bad slug, plan or key (`validation_failed`, `field` says which)");
pub const SLUG_TAKEN: ErrorAnswer = (409, "Slug taken (`conflict`)");
pub const NODE_FULL: ErrorAnswer = (507, "The node has no room (`node_full`)");
pub const NOT_ADMIN: ErrorAnswer = (403, "Not an administrator (code `forbidden`)");
pub const NO_ACCOUNT: ErrorAnswer = (404, "No such account");
pub const NO_NODE: ErrorAnswer = (404, "No such node");

/// An error answer as the document writes it: the cause and the `ErrorBody` schema.
pub fn error_response(description: impl Into<String>) -> Response {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", body).build()
}

fn answers(list: &[ErrorAnswer]) -> BTreeMap<String, RefOr<Response>> {
    list.iter().map(|(code, cause)| (code.to_string(), RefOr::T(error_response(*cause)))).collect()
}

/// A set of error answers, named in handlers' `responses(...)` like a response.
macro_rules! error_set {
    ($($(#[$meta:meta])* $name:ident = [$($answer:ident),+];)+) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    answers(&[$($answer),+])
                }
            }
        )+
    };
}

error_set! {
    /// Any hosting endpoint: the server may run without libvirt.
    HostingOff = [HOSTING_OFF];
    /// One hosting, by id (an administrator's: anyone's).
    HostingErrors = [NOT_FOUND, HOSTING_OFF];
    /// An operation on one hosting.
    OperationErrors = [NOT_FOUND, BUSY, HOSTING_OFF];
    /// The caller's first hosting (`/host`).
    HostErrors = [NO_HOSTING, HOSTING_OFF];
    /// An operation on the caller's first hosting (`/host`).
    HostOperationErrors = [NO_HOSTING, BUSY, HOSTING_OFF];
    /// A new hosting.
    CreateErrors = [OVER_QUOTA, SLUG_TAKEN, INVALID_SITE, HOSTING_OFF, NODE_FULL];
    /// A new API token or SSH key.
    QuotaErrors = [HOLDS_AS_MANY];
    /// The administrator's API.
    AdminErrors = [NOT_ADMIN];
    /// An administrator acting on one account.
    AccountAdminErrors = [NOT_ADMIN, NO_ACCOUNT];
    /// The administrator's API on what the hosting service keeps (nodes, every hosting, events).
    HostingAdminErrors = [NOT_ADMIN, HOSTING_OFF];
    /// An administrator acting on one node.
    NodeErrors = [NOT_ADMIN, NO_NODE, HOSTING_OFF];
}

/// The answers every operation of a kind can give, documented once here rather than in each
/// handler's list (a new handler gets them too): a path parameter of the wrong type or out of
/// range (400 `invalid_path`), a bad query string (400 `invalid_query`), a body that is not
/// JSON of the documented shape (400 `invalid_json`, `invalid_body`, `unsupported_media_type`),
/// a missing or bad token (401), a bad `?wait=` (400 `invalid_wait`) or a long poll past the
/// account's places (429). Where a handler documents the code already, its description gains
/// the shared cause.
pub struct SharedResponses;

impl SharedResponses {
    fn add(op: &mut Operation, code: &str, cause: &str) {
        match op.responses.responses.get_mut(code) {
            Some(RefOr::T(r)) => {
                if !r.description.contains(cause) {
                    r.description = format!("{}; or {cause}", r.description.trim_end_matches('.'));
                }
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                op.responses.responses.insert(code.to_owned(), RefOr::T(error_response(upper_first(cause))));
            }
        }
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                let has = |place: ParameterIn| op.parameters.iter().flatten().any(|p| p.parameter_in == place);
                let (path, query) = (has(ParameterIn::Path), has(ParameterIn::Query));
                if path {
                    Self::add(op, "400", "a path parameter of the wrong type or out of range (`invalid_path`)");
                }
                if query {
                    Self::add(op, "400", "a query parameter of the wrong type (`invalid_query`)");
                }
                // `?wait=` holds one of the account's places for streams and long polls.
                if op.parameters.iter().flatten().any(|p| p.parameter_in == ParameterIn::Query && p.name == "wait") {
                    Self::add(op, "400", "a `wait` that is not 1 to 600 seconds (`invalid_wait`)");
                    Self::add(op, "429", "the account holds as many event streams and long polls as it may (`too_many_streams`, Retry-After)");
                }
                if op.request_body.is_some() {
                    Self::add(op, "400", "a body that is not of the documented type and shape (`invalid_json`, `invalid_body`, `invalid_form`, `unsupported_media_type`)");
                }
                if op.security.is_some() {
                    Self::add(op, "401", "no token, or one that is not valid (`unauthorized`)");
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch, &mut item.trace]
        .into_iter()
        .filter_map(Option::as_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(path: &str, code: &str) -> String {
        let item = &super::super::openapi::doc().paths.paths[path];
        let op = item.post.as_ref().expect("a POST");
        match &op.responses.responses[code] {
            RefOr::T(r) => r.description.clone(),
            RefOr::Ref(r) => panic!("{path} {code} is a reference to {}", r.ref_location),
        }
    }

    /// A handler names its set first and its own answers after it: its own win.
    #[test]
    fn a_handlers_own_answer_replaces_the_one_of_its_set() {
        let action = "/api/v1/hostings/{id}/{action}";
        assert!(description(action, "404").contains("unknown action"), "{}", description(action, "404"));
        assert_eq!(description(action, "409"), BUSY.1);
        assert_eq!(description(action, "503"), HOSTING_OFF.1);
        assert_eq!(description("/api/v1/host", "409"), "You already have a hosting, or the slug is taken (`conflict`)");
        assert_eq!(description("/api/v1/host", "507"), NODE_FULL.1);
    }
}
