//! The Secrets Manager adapter against moto server.

use orkv_store::{NewSecret, SecretStore, StoreErrorKind};
use orkv_tests::{Moto, secrets_client, unique};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test]
async fn a_secret_is_created_with_its_value_description_and_tags_and_read_back() {
    let moto = Moto::start().await;
    let (client, calls) = secrets_client(&moto).await;
    let store = SecretStore::new(client.clone());
    let name = unique("openrouter/store/created");
    let value = SecretString::from("{\"api_key\":\"v\"}".to_owned());
    let tags = vec![(
        "orkv:managed-by".to_owned(),
        "openrouter-key-vending".to_owned(),
    )];
    let written = store
        .create(&NewSecret {
            name: &name,
            value: &value,
            description: Some("a test secret"),
            tags: &tags,
            kms_key_id: None,
        })
        .await
        .expect("created");
    assert!(written.arn.contains(&name));
    let read = store
        .get(&name, "AWSCURRENT")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.value.expose_secret(), "{\"api_key\":\"v\"}");
    assert_eq!(read.version_id, written.version_id);
    assert!(read.stages.iter().any(|s| s == "AWSCURRENT"));
    let described = client
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("describe");
    assert_eq!(described.description(), Some("a test secret"));
    assert_eq!(described.tags().len(), 1);
    // A second create of the same name is refused as AlreadyExists.
    let err = store
        .create(&NewSecret {
            name: &name,
            value: &value,
            description: None,
            tags: &tags,
            kms_key_id: None,
        })
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), StoreErrorKind::AlreadyExists);
    assert!(calls.get() >= 4);
}

#[tokio::test]
async fn a_missing_secret_reads_as_none() {
    let moto = Moto::start().await;
    let (client, _) = secrets_client(&moto).await;
    let store = SecretStore::new(client);
    assert!(
        store
            .get(&unique("absent"), "AWSCURRENT")
            .await
            .expect("no error")
            .is_none()
    );
}

#[tokio::test]
async fn put_with_a_token_is_idempotent_and_a_conflicting_value_is_refused() {
    let moto = Moto::start().await;
    let (client, _) = secrets_client(&moto).await;
    let store = SecretStore::new(client);
    let name = unique("openrouter/store/put");
    let first = SecretString::from("one".to_owned());
    store
        .create(&NewSecret {
            name: &name,
            value: &first,
            description: None,
            tags: &[],
            kms_key_id: None,
        })
        .await
        .expect("created");
    let token = uuid::Uuid::new_v4().to_string();
    let two = SecretString::from("two".to_owned());
    let a = store
        .put(&name, &two, &token, &["AWSCURRENT"])
        .await
        .expect("put");
    let b = store
        .put(&name, &two, &token, &["AWSCURRENT"])
        .await
        .expect("same put again");
    assert_eq!(a.version_id, b.version_id);
    let other = SecretString::from("three".to_owned());
    let err = store
        .put(&name, &other, &token, &["AWSCURRENT"])
        .await
        .expect_err("conflict");
    assert_eq!(err.kind(), StoreErrorKind::VersionConflict);
    let current = store
        .get(&name, "AWSCURRENT")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(current.value.expose_secret(), "two");
    let previous = store
        .get(&name, "AWSPREVIOUS")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(previous.value.expose_secret(), "one");
}

#[tokio::test]
async fn managed_secrets_are_found_by_tag_a_page_of_100_per_call() {
    let moto = Moto::start().await;
    let (client, calls) = secrets_client(&moto).await;
    let store = SecretStore::new(client);
    let marker = unique("fleet");
    let value = SecretString::from("x".to_owned());
    for i in 0..150 {
        let tags = vec![("orkv:fleet".to_owned(), marker.clone())];
        store
            .create(&NewSecret {
                name: &format!("openrouter/{marker}/{i}"),
                value: &value,
                description: None,
                tags: &tags,
                kms_key_id: None,
            })
            .await
            .expect("created");
    }
    let other = vec![("orkv:fleet".to_owned(), "someone-else".to_owned())];
    store
        .create(&NewSecret {
            name: &unique("openrouter/other"),
            value: &value,
            description: None,
            tags: &other,
            kms_key_id: None,
        })
        .await
        .expect("created");
    calls.reset();
    let mut seen = 0;
    let pages = store
        .for_each_tagged("orkv:fleet", &marker, |page| {
            seen += page.len();
            assert!(
                page.iter()
                    .all(|s| s.tag("orkv:fleet") == Some(marker.as_str()))
            );
            true
        })
        .await
        .expect("listed");
    assert_eq!(seen, 150);
    assert_eq!(pages, 2);
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn deleting_a_missing_secret_is_not_an_error() {
    let moto = Moto::start().await;
    let (client, _) = secrets_client(&moto).await;
    let store = SecretStore::new(client);
    store
        .delete(&unique("never-existed"), true)
        .await
        .expect("fine");
}

/// AWS words a token conflict as its generic `ResourceExistsException` ("A resource with the ID
/// you requested already exists."), naming no token, where moto's text names the
/// `ClientRequestToken`: the kind must come from the operation. API reference: PutSecretValue,
/// `ClientRequestToken` and Errors (see `docs/aws-fidelity.md`).
#[tokio::test]
async fn a_token_conflict_worded_as_aws_words_it_is_a_version_conflict() {
    let moto = Moto::start().await;
    let proxy = orkv_tests::proxy::LatencyProxy::start(&moto.url, std::time::Duration::ZERO).await;
    proxy.set_strict(true);
    let (client, _) = orkv_tests::secrets_client_at(&proxy.url).await;
    let store = SecretStore::new(client);
    let name = unique("openrouter/store/strict");
    let new = |v: &'static str| SecretString::from(v.to_owned());
    // Tagged as the product's: the strict layer grants the tag-scoped role nothing else.
    let tags = [(
        "orkv:managed-by".to_owned(),
        "openrouter-key-vending".to_owned(),
    )];
    let secret = NewSecret {
        name: &name,
        value: &new("one"),
        description: None,
        tags: &tags,
        kms_key_id: None,
    };
    store.create(&secret).await.expect("created");
    let again = store.create(&secret).await.expect_err("exists");
    assert_eq!(again.kind(), StoreErrorKind::AlreadyExists);
    let token = uuid::Uuid::new_v4().to_string();
    store
        .put(&name, &new("two"), &token, &["AWSCURRENT"])
        .await
        .expect("put");
    let err = store
        .put(&name, &new("three"), &token, &["AWSCURRENT"])
        .await
        .expect_err("conflict");
    assert_eq!(err.code, "ResourceExistsException");
    assert!(
        !err.message.contains("ClientRequestToken"),
        "{}",
        err.message
    );
    assert_eq!(err.kind(), StoreErrorKind::VersionConflict);
}

/// `GetSecretValue` without a stage, as applications read a secret, answers `AWSCURRENT` (API
/// reference, *GetSecretValue*). moto 5.2.5 answers the version it last made current by a
/// write, so after a label move a consumer would read a superseded record locally; the strict
/// layer answers as AWS does.
#[tokio::test]
async fn a_read_without_a_stage_answers_the_current_version_after_a_label_move() {
    let moto = Moto::start().await;
    let proxy = orkv_tests::proxy::LatencyProxy::start(&moto.url, std::time::Duration::ZERO).await;
    proxy.set_strict(true);
    let (client, _) = orkv_tests::secrets_client_at(&proxy.url).await;
    let store = SecretStore::new(client.clone());
    let name = unique("openrouter/store/unstaged");
    let tags = vec![(
        "orkv:managed-by".to_owned(),
        "openrouter-key-vending".to_owned(),
    )];
    let first = store
        .create(&NewSecret {
            name: &name,
            value: &SecretString::from("{\"v\":1}".to_owned()),
            description: None,
            tags: &tags,
            kms_key_id: None,
        })
        .await
        .expect("created");
    let second = store
        .put(
            &name,
            &SecretString::from("{\"v\":2}".to_owned()),
            &uuid::Uuid::new_v4().to_string(),
            &["ORKV_UPDATE"],
        )
        .await
        .expect("put");
    store
        .move_stage(
            &name,
            "AWSCURRENT",
            Some(&first.version_id),
            Some(&second.version_id),
        )
        .await
        .expect("moved");
    let unstaged = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("read");
    assert_eq!(unstaged.secret_string(), Some("{\"v\":2}"));
    assert_eq!(unstaged.version_id(), Some(second.version_id.as_str()));
}
