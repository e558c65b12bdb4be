//! Plain HTTP requests of the tests.

/// The body of `GET url` as text; panics when the request fails.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}
