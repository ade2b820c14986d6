#![recursion_limit = "512"]
//! The HTTP surface against a real server on an ephemeral port: one test binary, one module
//! per feature. SQLite by default; PostgreSQL when TEST_DATABASE_URL is set.
mod helpers;

mod acme_challenge;
mod banner;
mod admin;
mod csrf;
mod health;
mod hosting_disabled;
mod login;
mod pages;
mod sessions;
mod session_list;
mod signup;
mod tokens;
