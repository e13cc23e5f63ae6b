//! Lease PUTs in Kubernetes' protobuf encoding (`--node-lease-encoding protobuf`, the default).
//!
//! Renewals are most of what kwok sends at scale (one PUT per node every quarter lease),
//! and the apiserver decodes each request body and encodes each response in the
//! encoding asked for. Protobuf is what kubelets and the controllers use, and what the
//! apiserver stores in etcd, so it spends the least there. The messages are k8s-pb's;
//! they travel in the apiserver's envelope: the bytes `k8s\0`, then a `runtime.Unknown`
//! holding the object's `apiVersion`/`kind` and its encoded message.
//!
//! Only the fields a Lease's owner writes or must carry back are converted (name,
//! namespace, uid, resourceVersion, generation, creation time, labels, annotations,
//! owner references, finalizers, and the whole spec); of `managedFields` only who wrote
//! them (not `fieldsV1`): a renewal sends none, so the apiserver keeps its own, as with
//! the JSON PUTs, or the one empty entry that clears them (`--node-lease-managed-fields`).

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, MicroTime, ObjectMeta, OwnerReference, Time,
};
use k8s_pb::api::coordination::v1 as pb;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::Client;
use kube::core::Status;
use prost::Message;

/// The media type of Kubernetes' protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How every protobuf-encoded object or Status starts.
const MAGIC: &[u8] = b"k8s\0";

/// A protobuf body that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The body does not start as the apiserver's protobuf envelope.
    #[error("the body is not a Kubernetes protobuf message (no k8s\\0 prefix)")]
    NoMagic,
    /// The envelope or the object inside is malformed.
    #[error("malformed protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The envelope holds no object.
    #[error("the protobuf envelope holds no object")]
    Empty,
}

/// `lease` as a PUT or POST body.
pub fn encode(lease: &Lease) -> Vec<u8> {
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
        }),
        raw: Some(lease_to_pb(lease).encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + envelope.encoded_len());
    out.extend_from_slice(MAGIC);
    envelope.encode(&mut out).expect("a Vec has room for any message");
    out
}

/// The object bytes inside an envelope.
fn open(body: &[u8]) -> Result<Vec<u8>, WireError> {
    let rest = body.strip_prefix(MAGIC).ok_or(WireError::NoMagic)?;
    Unknown::decode(rest)?.raw.ok_or(WireError::Empty)
}

/// A Lease as the apiserver answers it.
pub fn decode(body: &[u8]) -> Result<Lease, WireError> {
    Ok(lease_from_pb(pb::Lease::decode(open(body)?.as_slice())?))
}

/// An error answer (a protobuf `Status`, or text where something in between answered)
/// as kube's error, with the HTTP status as its code.
fn api_error(code: u16, body: &[u8]) -> kube::Error {
    let status = open(body)
        .ok()
        .and_then(|raw| pb_meta::Status::decode(raw.as_slice()).ok());
    let (message, reason) = match status {
        Some(s) => (s.message.unwrap_or_default(), s.reason.unwrap_or_default()),
        None => (String::from_utf8_lossy(body).trim().to_owned(), String::new()),
    };
    kube::Error::Api(Status::failure(&message, &reason).with_code(code).boxed())
}

/// PUTs `lease` (its resourceVersion the precondition) to
/// `namespace/name`, in protobuf both ways; the Lease as stored.
pub async fn replace(
    client: &Client,
    namespace: &str,
    name: &str,
    lease: &Lease,
) -> Result<Lease, kube::Error> {
    let request = http::Request::put(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    ))
    .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
    .header(http::header::ACCEPT, CONTENT_TYPE)
    .body(kube::client::Body::from(encode(lease)))
    .map_err(kube::Error::HttpError)?;
    let response = client.send(request).await?;
    let code = response.status();
    let body = response.into_body().collect_bytes().await?;
    if !code.is_success() {
        return Err(api_error(code.as_u16(), &body));
    }
    decode(&body).map_err(|e| kube::Error::Service(Box::new(e)))
}

fn lease_to_pb(lease: &Lease) -> pb::Lease {
    pb::Lease {
        metadata: Some(meta_to_pb(&lease.metadata)),
        spec: lease.spec.as_ref().map(|s| pb::LeaseSpec {
            holder_identity: s.holder_identity.clone(),
            lease_duration_seconds: s.lease_duration_seconds,
            acquire_time: s.acquire_time.as_ref().map(|t| micro_to_pb(t.0)),
            renew_time: s.renew_time.as_ref().map(|t| micro_to_pb(t.0)),
            lease_transitions: s.lease_transitions,
            strategy: s.strategy.clone(),
            preferred_holder: s.preferred_holder.clone(),
        }),
    }
}

fn lease_from_pb(lease: pb::Lease) -> Lease {
    Lease {
        metadata: lease.metadata.map(meta_from_pb).unwrap_or_default(),
        spec: lease.spec.map(|s| LeaseSpec {
            holder_identity: s.holder_identity,
            lease_duration_seconds: s.lease_duration_seconds,
            acquire_time: s.acquire_time.and_then(micro_from_pb),
            renew_time: s.renew_time.and_then(micro_from_pb),
            lease_transitions: s.lease_transitions,
            strategy: s.strategy,
            preferred_holder: s.preferred_holder,
        }),
    }
}

fn meta_to_pb(m: &ObjectMeta) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        generation: m.generation,
        creation_timestamp: m.creation_timestamp.as_ref().map(|t| {
            let (seconds, nanos) = seconds_nanos(t.0);
            pb_meta::Time { seconds, nanos }
        }),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        owner_references: m
            .owner_references
            .iter()
            .flatten()
            .map(|o| pb_meta::OwnerReference {
                api_version: Some(o.api_version.clone()),
                kind: Some(o.kind.clone()),
                name: Some(o.name.clone()),
                uid: Some(o.uid.clone()),
                controller: o.controller,
                block_owner_deletion: o.block_owner_deletion,
            })
            .collect(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
        // What kwok sends is none, or the one empty entry that clears them.
        managed_fields: m
            .managed_fields
            .iter()
            .flatten()
            .map(|f| pb_meta::ManagedFieldsEntry {
                manager: f.manager.clone(),
                operation: f.operation.clone(),
                api_version: f.api_version.clone(),
                fields_type: f.fields_type.clone(),
                subresource: f.subresource.clone(),
                ..pb_meta::ManagedFieldsEntry::default()
            })
            .collect(),
        ..pb_meta::ObjectMeta::default()
    }
}

fn meta_from_pb(m: pb_meta::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        creation_timestamp: m
            .creation_timestamp
            .and_then(|t| timestamp(t.seconds, t.nanos))
            .map(Time),
        labels: (!m.labels.is_empty()).then_some(m.labels),
        annotations: (!m.annotations.is_empty()).then_some(m.annotations),
        owner_references: (!m.owner_references.is_empty()).then(|| {
            m.owner_references
                .into_iter()
                .map(|o| OwnerReference {
                    api_version: o.api_version.unwrap_or_default(),
                    kind: o.kind.unwrap_or_default(),
                    name: o.name.unwrap_or_default(),
                    uid: o.uid.unwrap_or_default(),
                    controller: o.controller,
                    block_owner_deletion: o.block_owner_deletion,
                })
                .collect()
        }),
        finalizers: (!m.finalizers.is_empty()).then_some(m.finalizers),
        // Who manages what is not read; that there are entries is
        // (`--node-lease-managed-fields strip` clears them).
        managed_fields: (!m.managed_fields.is_empty()).then(|| {
            m.managed_fields
                .into_iter()
                .map(|f| ManagedFieldsEntry {
                    manager: f.manager,
                    operation: f.operation,
                    api_version: f.api_version,
                    fields_type: f.fields_type,
                    subresource: f.subresource,
                    ..ManagedFieldsEntry::default()
                })
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

fn seconds_nanos(t: Timestamp) -> (Option<i64>, Option<i32>) {
    (Some(t.as_second()), Some(t.subsec_nanosecond()))
}

fn micro_to_pb(t: Timestamp) -> pb_meta::MicroTime {
    let (seconds, nanos) = seconds_nanos(t);
    pb_meta::MicroTime { seconds, nanos }
}

fn micro_from_pb(t: pb_meta::MicroTime) -> Option<MicroTime> {
    timestamp(t.seconds, t.nanos).map(MicroTime)
}

/// A time the apiserver sent; one out of range is dropped (it cannot happen with a
/// real apiserver, and a renewal then writes a new one).
fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Option<Timestamp> {
    Timestamp::new(seconds.unwrap_or(0), nanos.unwrap_or(0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn lease() -> Lease {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        Lease {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                namespace: Some("kube-node-lease".into()),
                uid: Some("u-1".into()),
                resource_version: Some("123".into()),
                creation_timestamp: Some(Time(at("2026-12-05T01:00:00Z"))),
                labels: Some(BTreeMap::from([("a".into(), "b".into())])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: "node-1".into(),
                    uid: "n-1".into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("kwok-0".into()),
                lease_duration_seconds: Some(40),
                acquire_time: Some(MicroTime(at("2026-12-05T01:00:00.123456Z"))),
                renew_time: Some(MicroTime(at("2026-12-05T01:00:10.654321Z"))),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_should_come_back_as_it_went() {
        let body = encode(&lease());
        assert!(body.starts_with(b"k8s\0"));
        assert_eq!(decode(&body).unwrap(), lease());
    }

    #[test]
    fn the_entry_that_clears_managed_fields_should_go_as_one_empty_message() {
        let mut clearing = lease();
        clearing.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        let raw = Unknown::decode(&encode(&clearing)[4..]).unwrap().raw.unwrap();
        let sent = pb::Lease::decode(raw.as_slice()).unwrap();
        // Go reads it as `[]ManagedFieldsEntry{{}}`, the apiserver's reset.
        assert_eq!(
            sent.metadata.unwrap().managed_fields,
            vec![pb_meta::ManagedFieldsEntry::default()]
        );
        // Without it, none go.
        let raw = Unknown::decode(&encode(&lease())[4..]).unwrap().raw.unwrap();
        assert!(
            pb::Lease::decode(raw.as_slice())
                .unwrap()
                .metadata
                .unwrap()
                .managed_fields
                .is_empty()
        );
    }

    #[test]
    fn an_answer_with_managed_fields_should_say_it_has_some() {
        let mut answer = lease_to_pb(&lease());
        answer.metadata.as_mut().unwrap().managed_fields = vec![pb_meta::ManagedFieldsEntry {
            manager: Some("kwok".into()),
            operation: Some("Update".into()),
            fields_v1: Some(pb_meta::FieldsV1 {
                raw: Some(br#"{"f:spec":{}}"#.to_vec()),
            }),
            ..pb_meta::ManagedFieldsEntry::default()
        }];
        let read = lease_from_pb(answer).metadata.managed_fields.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].manager.as_deref(), Some("kwok"));
        assert_eq!(read[0].fields_v1, None, "which fields is not read");
    }

    #[test]
    fn the_envelope_should_name_the_kind() {
        let envelope = Unknown::decode(&encode(&lease())[4..]).unwrap();
        let type_meta = envelope.type_meta.unwrap();
        assert_eq!(type_meta.api_version.as_deref(), Some("coordination.k8s.io/v1"));
        assert_eq!(type_meta.kind.as_deref(), Some("Lease"));
    }

    #[test]
    fn bad_bodies_should_say_what_is_wrong() {
        assert!(matches!(decode(b"{\"kind\":\"Lease\"}"), Err(WireError::NoMagic)));
        assert!(matches!(decode(b"k8s\0\xff\xff"), Err(WireError::Decode(_))));
        assert!(matches!(decode(b"k8s\0"), Err(WireError::Empty)));
    }

    #[test]
    fn an_error_answer_should_keep_its_code_and_message() {
        let status = pb_meta::Status {
            message: Some("the object has been modified".into()),
            reason: Some("Conflict".into()),
            code: Some(409),
            ..pb_meta::Status::default()
        };
        let mut body = MAGIC.to_vec();
        Unknown {
            raw: Some(status.encode_to_vec()),
            ..Unknown::default()
        }
        .encode(&mut body)
        .unwrap();
        let kube::Error::Api(s) = api_error(409, &body) else {
            panic!("an API error");
        };
        assert_eq!(
            (s.code, s.message.as_str(), s.reason.as_str()),
            (409, "the object has been modified", "Conflict")
        );
        let kube::Error::Api(s) = api_error(502, b"bad gateway\n") else {
            panic!("an API error");
        };
        assert_eq!((s.code, s.message.as_str()), (502, "bad gateway"));
    }
}
