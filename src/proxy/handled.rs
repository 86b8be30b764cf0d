//! How a request ended: the answer, and what the metrics and the access log
//! say of it. Every phase that ends a request builds one of these.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body_util::BodyExt;

use super::answer::{plain, text, Body};
use super::rejection::{Failure, Rejection};
use crate::config::Route;
use crate::metrics::{Outcome, Reason};
use crate::recent::Detail;
use crate::upstream;

/// How a request ended, for the metrics and the access log.
pub(super) struct Handled {
    pub(super) response: Response<Body>,
    pub(super) route: Option<Arc<Route>>,
    /// Served by (or refused for) the pass-through, not a route.
    pub(super) site: bool,
    pub(super) outcome: Outcome,
    pub(super) refusal: Option<Reason>,
    pub(super) reason: String,
    /// A refusal's evidence for the console (only while it is on).
    pub(super) detail: Option<Box<Detail>>,
}

impl Handled {
    pub(super) fn rejected(
        route: Option<&Arc<Route>>,
        rejection: Rejection,
        version: Version,
    ) -> Handled {
        Handled {
            response: rejection.response(version <= Version::HTTP_11),
            route: route.cloned(),
            site: false,
            outcome: Outcome::Refused,
            refusal: Some(rejection.class()),
            reason: rejection.to_string(),
            detail: None,
        }
    }

    pub(super) fn failed(route: Option<&Arc<Route>>, failure: Failure) -> Handled {
        Handled {
            response: plain(failure.status()),
            route: route.cloned(),
            site: false,
            outcome: Outcome::Failed,
            refusal: None,
            reason: failure.to_string(),
            detail: None,
        }
    }

    pub(super) fn answered(
        route: &Arc<Route>,
        outcome: Outcome,
        response: Response<Body>,
        reason: String,
    ) -> Handled {
        Handled {
            response,
            route: Some(route.clone()),
            site: false,
            outcome,
            refusal: None,
            reason,
            detail: None,
        }
    }
}

impl Handled {
    /// With the console's evidence of why it was refused.
    pub(super) fn with(mut self, detail: Option<Box<Detail>>) -> Handled {
        if detail.is_some() {
            self.detail = detail;
        }
        self
    }

    /// A report-only route's callback that failed checks but went on: the
    /// log and the metrics say what enforcing would have refused.
    pub(super) fn would_refuse(mut self, failed: Vec<crate::verify::Refusal>) -> Handled {
        let Some(first) = failed.first() else {
            return self;
        };
        self.refusal = Some(Rejection::Verify(first.clone()).class());
        let reasons: Vec<String> = failed.iter().map(ToString::to_string).collect();
        self.reason = format!("{} (enforce = false: {})", reasons.join("; "), self.reason);
        if self.outcome != Outcome::Failed {
            self.outcome = Outcome::WouldRefuse;
        }
        self
    }

    pub(super) fn rejected_site(rejection: Rejection, version: Version) -> Handled {
        Handled {
            site: true,
            ..Handled::rejected(None, rejection, version)
        }
    }

    pub(super) fn failed_site(e: upstream::ForwardError) -> Handled {
        Handled {
            site: true,
            ..Handled::failed(None, Failure::Upstream(e))
        }
    }

    pub(super) fn site(response: Response<Body>) -> Handled {
        Handled {
            response,
            route: None,
            site: true,
            outcome: Outcome::Forwarded,
            refusal: None,
            reason: String::from("passthrough"),
            detail: None,
        }
    }

    pub(super) fn acme_challenge(key_authorization: String) -> Handled {
        let mut response = Response::new(
            http_body_util::Full::new(bytes::Bytes::from(key_authorization))
                .map_err(|never| match never {})
                .boxed(),
        );
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Handled {
            response,
            route: None,
            site: false,
            outcome: Outcome::Acme,
            refusal: None,
            reason: String::from("acme http-01 challenge answered"),
            detail: None,
        }
    }

    pub(super) fn redirected(location: HeaderValue) -> Handled {
        let mut response = text(StatusCode::PERMANENT_REDIRECT, "use https\n");
        response.headers_mut().insert(header::LOCATION, location);
        Handled {
            response,
            route: None,
            site: false,
            outcome: Outcome::Redirected,
            refusal: None,
            reason: String::from("http_redirect: 308 to https"),
            detail: None,
        }
    }
}
