//! Token creation is rate-limited per user (a leaked session cannot mint tokens in bulk).
use service::Error;
use service::accounts::AsActor;
use service::accounts::{Accounts, NewUser, UserView};
use vmw_test_support::TestDb;

const PASSWORD: &str = "correct horse battery";

async fn user(acc: &Accounts, name: &str) -> UserView {
    acc.register(NewUser { email: format!("{name}@example.com"), username: name.into(), password: PASSWORD.into() })
        .await
        .unwrap()
}

#[tokio::test]
async fn at_most_ten_api_tokens_an_hour_per_user() {
    let db = TestDb::new(service::db::connect_and_migrate).await;
    let acc = Accounts::new(db.conn());
    let u = user(&acc, "tok").await;
    let other = user(&acc, "tok2").await;
    for i in 0..10 {
        acc.create_api_token(&u.actor(), &format!("t{i}"), PASSWORD, None).await.unwrap();
    }
    let eleventh = acc.create_api_token(&u.actor(), "t10", PASSWORD, None).await;
    assert!(matches!(eleventh, Err(Error::RateLimited { retry_after_secs }) if retry_after_secs > 0), "{eleventh:?}");
    assert_eq!(acc.list_api_tokens(&u.actor()).await.unwrap().len(), 10);
    acc.create_api_token(&other.actor(), "mine", PASSWORD, None).await.expect("other users are not affected");
}
