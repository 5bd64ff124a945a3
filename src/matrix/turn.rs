//! TURN servers from the homeserver (`/voip/turnServer`).

use super::*;

/// `/voip/turnServer`. A homeserver without TURN answers `{}` (or no URIs): `None`.
pub(super) async fn turn_servers(client: &Client) -> Result<Option<TurnServers>, Error> {
    match client.send(turn_server::Request::default()).await {
        Ok(r) if r.uris.is_empty() => Ok(None),
        Ok(turn_server::Response {
            uris,
            username: Some(username),
            password: Some(password),
            ttl: Some(ttl),
        }) => Ok(Some(TurnServers {
            uris,
            username,
            password,
            ttl: Duration::from_secs(ttl),
        })),
        Ok(r) => {
            log::warn!(
                "the homeserver offers TURN servers {:?} without credentials (username, password and ttl): calls use direct connections only",
                r.uris
            );
            Ok(None)
        }
        Err(e) if e.client_api_error_kind() == Some(&ErrorKind::Unrecognized) => Ok(None),
        Err(e) => Err(Error::Matrix(format!(
            "cannot get TURN servers from the homeserver: {}",
            describe(&e)
        ))),
    }
}

/// `GET /voip/turnServer` with every field of the answer optional. Most homeservers without
/// TURN answer `{}`, which ruma's own response type cannot read, and matrix-sdk logs every
/// response it cannot read as an error: here `{}` is simply no TURN. The request and the error
/// answers are ruma's.
pub(super) mod turn_server {
    use matrix_sdk::ruma::api::client::voip::get_turn_server_info::v3 as ruma_turn;
    use matrix_sdk::ruma::api::error::{FromHttpResponseError, IntoHttpError};
    use matrix_sdk::ruma::api::{
        auth_scheme::AuthScheme, path_builder::PathBuilder, EndpointError, IncomingResponse,
        Metadata, OutgoingRequest,
    };
    use matrix_sdk::ruma::exports::{bytes::BufMut, http};

    #[derive(Clone, Debug, Default)]
    pub struct Request {}

    #[derive(Debug, Default, serde::Deserialize)]
    pub struct Response {
        #[serde(default)]
        pub uris: Vec<String>,
        pub username: Option<String>,
        pub password: Option<String>,
        /// Seconds.
        pub ttl: Option<u64>,
    }

    impl Metadata for Request {
        const METHOD: http::Method = ruma_turn::Request::METHOD;
        const RATE_LIMITED: bool = ruma_turn::Request::RATE_LIMITED;
        type Authentication = <ruma_turn::Request as Metadata>::Authentication;
        type PathBuilder = <ruma_turn::Request as Metadata>::PathBuilder;
        const PATH_BUILDER: Self::PathBuilder = ruma_turn::Request::PATH_BUILDER;
    }

    impl OutgoingRequest for Request {
        type EndpointError = <ruma_turn::Request as OutgoingRequest>::EndpointError;
        type IncomingResponse = Response;

        fn try_into_http_request<T: Default + BufMut + AsRef<[u8]>>(
            self,
            base_url: &str,
            authentication_input: <Self::Authentication as AuthScheme>::Input<'_>,
            path_builder_input: <Self::PathBuilder as PathBuilder>::Input<'_>,
        ) -> Result<http::Request<T>, IntoHttpError> {
            ruma_turn::Request::new().try_into_http_request(
                base_url,
                authentication_input,
                path_builder_input,
            )
        }
    }

    impl IncomingResponse for Response {
        type EndpointError = <ruma_turn::Request as OutgoingRequest>::EndpointError;

        fn try_from_http_response<T: AsRef<[u8]>>(
            response: http::Response<T>,
        ) -> Result<Self, FromHttpResponseError<Self::EndpointError>> {
            if response.status().as_u16() >= 400 {
                return Err(FromHttpResponseError::Server(
                    Self::EndpointError::from_http_response(response),
                ));
            }
            Ok(serde_json::from_slice(response.body().as_ref())?)
        }
    }
}
