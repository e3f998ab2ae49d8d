//! A consumer group as its coordinator describes it: state and member count, for classic
//! groups and KIP-848 (`group.protocol = "consumer"`) groups alike.
//!
//! Why FFI: the rdkafka crate (0.39) wraps only the classic DescribeGroups
//! (`fetch_group_list`), which does not find a KIP-848 group: it reads one as `Dead` with no
//! members. librdkafka's own `rd_kafka_DescribeConsumerGroups` asks ConsumerGroupDescribe first
//! and falls back to DescribeGroups for classic groups, so this calls it through rdkafka-sys.
//! Every `unsafe` block of the bus is in this file; each owned pointer is released by a guard.
//!
//! Why the classic call first all the same: in librdkafka 2.12.1 an admin request to a group
//! coordinator that cannot be sent (its broker down) releases its enqueue-once object twice
//! and aborts the process (`rd_kafka_enq_once_del_source_return: Assertion eonce->refcnt >
//! 0`; fixed upstream after 2.14.1, commit 731d335). A process that describes groups every few
//! seconds, such as the autoscaler, must not die of a broker outage. Only a group the classic
//! call reads as `Dead` (a KIP-848 group, or none) is asked again with DescribeConsumerGroups.

use std::ffi::{CStr, CString, c_char};
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;

/// What the coordinator says of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// `Stable`, `Empty`, `Dead`, `PreparingRebalance`, `CompletingRebalance`; `Unknown` for a
    /// KIP-848 group that is assigning or reconciling (librdkafka maps no name for those).
    pub state: String,
    /// Consumers in the group now.
    pub members: usize,
    /// The partition assignor its members agreed on (`range`, `cooperative-sticky`; the
    /// broker's, `uniform` or `range`, for a KIP-848 group); empty while it has none.
    pub assignor: String,
}

impl GroupDescription {
    /// A group the coordinator does not know.
    fn dead() -> GroupDescription {
        GroupDescription { state: "Dead".to_owned(), members: 0, assignor: String::new() }
    }
}

/// The member id the coordinator gave `client`'s consumer; `None` while it has none (not yet
/// joined, or not a consumer).
pub fn member_id<C: ClientContext>(client: &Client<C>) -> Option<String> {
    let rk = client.native_ptr();
    // SAFETY: `rk` is the live handle `client` owns; librdkafka returns a copy it allocated (or
    // null), which is copied here and released with the function it pairs with.
    unsafe {
        let id = rd::rd_kafka_memberid(rk);
        if id.is_null() {
            return None;
        }
        let copy = copied(id);
        rd::rd_kafka_mem_free(rk, id.cast());
        copy.filter(|id| !id.is_empty())
    }
}

/// Describes `group` with `client`'s connection, waiting up to `timeout` (twice, for a group
/// that is not classic). Blocking: run it on a blocking thread. A group that does not exist
/// reads as `Dead` with no members, as the classic call reads it.
pub fn describe_group<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<GroupDescription, KafkaError> {
    let name = CString::new(group)
        .map_err(|_| KafkaError::AdminOpCreation(format!("group id {group:?} contains a NUL byte")))?;
    let classic = client.fetch_group_list(Some(group), timeout)?;
    if let Some(found) = classic.groups().iter().find(|found| found.name() == group && found.state() != "Dead") {
        return Ok(GroupDescription {
            state: found.state().to_owned(),
            members: found.members().len(),
            assignor: found.protocol().to_owned(),
        });
    }
    describe_consumer_group(client, &name, timeout)
}

/// Describes the group `name` with librdkafka's DescribeConsumerGroups.
fn describe_consumer_group<C: ClientContext>(
    client: &Client<C>,
    name: &CStr,
    timeout: Duration,
) -> Result<GroupDescription, KafkaError> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = client.native_ptr();

    // SAFETY: `rk` is the live handle `client` owns for the whole call. The queue and options
    // are created here and released by their guards after the event that uses them is gone.
    let queue = Owned::new(unsafe { rd::rd_kafka_queue_new(rk) }, rd::rd_kafka_queue_destroy)?;
    let options = Owned::new(
        // SAFETY: as above; the op code is a valid admin op.
        unsafe { rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS) },
        rd::rd_kafka_AdminOptions_destroy,
    )?;
    let mut reason = [0 as c_char; 512];
    // SAFETY: `options` is live; `reason` is a writable buffer of the length passed.
    let set = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(options.ptr(), timeout_ms, reason.as_mut_ptr(), reason.len())
    };
    if set != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka wrote a NUL-terminated message into `reason`.
        let reason = unsafe { CStr::from_ptr(reason.as_ptr()) }.to_string_lossy().into_owned();
        return Err(KafkaError::AdminOpCreation(reason));
    }
    let mut groups = [name.as_ptr()];
    // SAFETY: `groups` holds one NUL-terminated string that outlives the call (librdkafka
    // copies it); `options` and `queue` are live.
    unsafe { rd::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options.ptr(), queue.ptr()) };

    // The request times out broker-side after `timeout`; the margin lets that answer arrive.
    let wait_ms = timeout_ms.saturating_add(1_000);
    // SAFETY: `queue` is live; a null event means nothing arrived in time.
    let event = Owned::new(unsafe { rd::rd_kafka_queue_poll(queue.ptr(), wait_ms) }, rd::rd_kafka_event_destroy)
        .map_err(|_| KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut))?;
    // SAFETY: `event` is live until its guard drops at the end of this function, and every
    // pointer read below belongs to it.
    unsafe { read_description(event.ptr()) }
}

/// Reads the one group description of a DescribeConsumerGroups result event.
///
/// # Safety
/// `event` must be a live event, and nothing read from it may outlive it (all is copied out).
unsafe fn read_description(event: *mut rd::rd_kafka_event_t) -> Result<GroupDescription, KafkaError> {
    // SAFETY (whole body): every pointer comes from `event`, is checked for null before use,
    // and strings are copied before returning.
    unsafe {
        let code = rd::rd_kafka_event_error(event);
        if code != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(KafkaError::AdminOp(code.into()));
        }
        let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event);
        if result.is_null() {
            return Err(unexpected("an event that is not a DescribeConsumerGroups result"));
        }
        let mut count = 0;
        let descriptions = rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
        if descriptions.is_null() || count != 1 {
            return Err(unexpected("a result without exactly one group"));
        }
        let description = *descriptions;
        if description.is_null() {
            return Err(unexpected("a null group description"));
        }
        let error = rd::rd_kafka_ConsumerGroupDescription_error(description);
        if !error.is_null() {
            let code = rd::rd_kafka_error_code(error);
            if code == RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND {
                return Ok(GroupDescription::dead());
            }
            return Err(KafkaError::AdminOp(code.into()));
        }
        let state =
            copied(rd::rd_kafka_consumer_group_state_name(rd::rd_kafka_ConsumerGroupDescription_state(description)))
                .unwrap_or_else(|| "Unknown".to_owned());
        let members = rd::rd_kafka_ConsumerGroupDescription_member_count(description);
        let assignor =
            copied(rd::rd_kafka_ConsumerGroupDescription_partition_assignor(description)).unwrap_or_default();
        Ok(GroupDescription { state, members, assignor })
    }
}

/// A copy of a string librdkafka returns; `None` for a null pointer.
///
/// # Safety
/// `text` is null or a NUL-terminated string alive for the call.
unsafe fn copied(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, by the caller's contract.
    Some(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned())
}

fn unexpected(what: &str) -> KafkaError {
    KafkaError::AdminOpCreation(format!("librdkafka answered DescribeConsumerGroups with {what}"))
}

/// A librdkafka object this call owns, destroyed when dropped.
struct Owned<T> {
    ptr: NonNull<T>,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    /// Takes ownership of `ptr`; a null pointer (librdkafka could not create it) is an error.
    fn new(ptr: *mut T, destroy: unsafe extern "C" fn(*mut T)) -> Result<Owned<T>, KafkaError> {
        NonNull::new(ptr).map(|ptr| Owned { ptr, destroy }).ok_or_else(|| unexpected("a null object"))
    }

    fn ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` was created by librdkafka, is owned here alone, and is destroyed once,
        // with the function librdkafka pairs with its constructor.
        unsafe { (self.destroy)(self.ptr.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::Consumer;

    use super::*;

    #[test]
    fn a_group_id_with_a_nul_byte_is_refused_before_any_call() {
        let consumer: rdkafka::consumer::BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").create().unwrap();
        let error = describe_group(consumer.client(), "bad\0group", Duration::from_millis(10)).unwrap_err();
        assert!(error.to_string().contains("NUL"), "{error}");
    }

    #[test]
    fn an_unreachable_cluster_is_an_error_not_a_dead_group() {
        let consumer: rdkafka::consumer::BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").create().unwrap();
        let outcome = describe_group(consumer.client(), "group", Duration::from_millis(300));
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
