//! SaslHandshake and SaslAuthenticate (version 1 and later: the tokens
//! travel in SaslAuthenticate requests). On a `SASL_PLAINTEXT` listener a
//! connection must authenticate before any other request but ApiVersions;
//! a failed attempt is answered, then the connection is closed, as Kafka
//! does. The exchange itself is `cairn_broker`'s (`SaslExchange`).

use cairn_broker::Broker;
use cairn_broker::SaslStep;
use cairn_kafka::kafka_protocol::messages::*;
use cairn_kafka::kafka_protocol::ResponseError;

use super::code;
use super::str_bytes;
use super::Session;

pub(crate) fn handshake(
    broker: &Broker,
    session: &mut Session,
    r: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mechanisms = broker
        .sasl_mechanisms()
        .into_iter()
        .map(str_bytes)
        .collect();
    let answer = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    if !broker.settings().kafka_sasl() {
        return answer
            .with_mechanisms(vec![])
            .with_error_code(code(ResponseError::UnsupportedSaslMechanism));
    }
    // A second handshake is a re-authentication (KIP-368): only for a
    // session that has a lifetime, with the mechanism it started with.
    let reauth_ok =
        session.expires_at.is_some() && session.mechanism.as_deref() == Some(r.mechanism.as_str());
    if session.authenticated && !reauth_ok {
        session.close_after = true;
        return answer.with_error_code(code(ResponseError::IllegalSaslState));
    }
    match broker.sasl_start(r.mechanism.as_str()) {
        Ok(exchange) => {
            session.sasl = Some(exchange);
            answer
        }
        Err(e) => {
            session.close_after = true;
            answer.with_error_code(e.kafka_code())
        }
    }
}

pub(crate) fn authenticate(
    broker: &Broker,
    session: &mut Session,
    r: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let answer = SaslAuthenticateResponse::default();
    let delay = std::time::Duration::from_millis(
        broker.settings().connection_failed_authentication_delay_ms,
    );
    let refuse = |session: &mut Session, error: i16, message: String| {
        session.close_after = true;
        session.delay_answer = Some(delay);
        session.sasl = None;
        answer
            .clone()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)))
    };
    if !broker.settings().kafka_sasl() {
        return refuse(
            session,
            code(ResponseError::IllegalSaslState),
            "SASL is not enabled on this listener".into(),
        );
    }
    let ctx = session.ctx.clone();
    let Some(exchange) = session.sasl.as_mut() else {
        return refuse(
            session,
            code(ResponseError::IllegalSaslState),
            "SaslAuthenticate before SaslHandshake".into(),
        );
    };
    match exchange.step(&ctx, &r.auth_bytes) {
        Ok(SaslStep::Continue(reply)) => answer.with_auth_bytes(reply.into()),
        Ok(SaslStep::Authenticated {
            reply,
            principal,
            lifetime,
        }) => {
            if session.authenticated && principal != session.ctx.principal {
                return refuse(
                    session,
                    code(ResponseError::IllegalSaslState),
                    format!(
                        "re-authentication as {principal}, not {}",
                        session.ctx.principal
                    ),
                );
            }
            tracing::debug!(principal = %principal, client = ?ctx.client, reauth = session.authenticated, "kafka: authenticated");
            session.mechanism = Some(exchange.mechanism().to_string());
            session.ctx.principal = principal;
            session.authenticated = true;
            session.sasl = None;
            session.expires_at = lifetime.map(|l| cairn_clock::now() + l);
            let lifetime_ms = lifetime.map_or(0, |l| {
                i64::try_from(l.as_millis()).unwrap_or(i64::MAX).max(1)
            });
            answer
                .with_auth_bytes(reply.into())
                .with_session_lifetime_ms(lifetime_ms)
        }
        Err(e) => refuse(session, e.kafka_code(), e.to_string()),
    }
}
