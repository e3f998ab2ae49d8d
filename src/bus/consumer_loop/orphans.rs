//! Finds partitions a Stable group leaves without an owner, and has one member rejoin so that
//! the group assigns them.
//!
//! Why: in a classic group librdkafka (2.12.1, and master) runs the leader's assignor on
//! metadata it asks of the *coordinator* broker (`rd_kafka_cgrp_handle_JoinGroup`, "partition
//! assignor"), while each member decides whether its subscription changed from metadata of any
//! broker. A group that joins right after its topic was created can meet a coordinator whose
//! metadata still lacks the topic: the assignor gives nobody anything, and since the members
//! already saw the topic, no later metadata refresh looks like a change and nothing rejoins. A
//! lone inference batcher sat on an empty assignment for all of CI's 180 s this way. The same
//! holds for partitions added to a topic. Kafka's Java client compares with the leader's own
//! metadata and rejoins; here the bus checks from outside, with what the coordinator says each
//! member owns.
//!
//! It asks with the classic DescribeGroups (`rd_kafka_list_groups`), which is all a classic
//! group needs, and not with librdkafka's DescribeConsumerGroups (`bus::groups`): in 2.12.1 a
//! coordinator request of the admin API that cannot be sent (its broker down) releases its
//! enqueue-once object twice and aborts the process (`rd_kafka_enq_once_del_source_return:
//! Assertion eonce->refcnt > 0`, fixed upstream after 2.14.1 by commit 731d335). Asked every
//! 15 s by every loop, it killed a worker in the chaos network partition scenario.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

/// How often a loop audits its group. Each audit is a ListGroups per broker and one
/// DescribeGroups (`rd_kafka_list_groups`), then one metadata request; a group left without
/// its partitions waits at most about this long (plus [`CONFIRM_AFTER`]).
pub(super) const AUDIT_INTERVAL: Duration = Duration::from_secs(15);

/// How long each of an audit's two requests may take. They block a thread that a shutdown
/// cannot interrupt (and the runtime waits for at exit): short.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long partitions must stay without an owner before the audit believes it. A cooperative
/// rebalance is Stable between its two rounds with the moved partitions owned by nobody, for
/// about a second (librdkafka's join backoff); a look this much later sees the second round's
/// outcome.
const CONFIRM_AFTER: Duration = Duration::from_secs(5);

/// Why an audit could not judge the group.
#[derive(Debug, thiserror::Error)]
pub(super) enum AuditError {
    #[error("cannot read the group or the topics' partitions: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the audit's blocking task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What one audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finding {
    /// Every partition of the subscribed topics has an owner, or the group is not Stable (a
    /// rebalance under way assigns afresh; the next audit looks at its outcome).
    Owned,
    /// A Stable group whose last assignment left `orphaned` partitions without an owner.
    Orphaned {
        /// `(topic, partition)` pairs nobody owns.
        orphaned: Vec<(String, i32)>,
        /// The member that should rejoin: the one owning the fewest partitions (it has the
        /// least to hand back), the smallest member id among equals, so that every member
        /// auditing the same description picks the same one and the group rebalances once.
        repairer: Option<String>,
    },
}

/// Audits one group's ownership of its subscribed topics. Cheap to clone.
#[derive(Clone)]
pub(super) struct OrphanAudit {
    admin: Arc<AdminClient<DefaultClientContext>>,
    group_id: String,
    topics: Vec<String>,
}

impl OrphanAudit {
    /// An audit of `group_id`, which subscribes to `topics`, asking through `admin`.
    pub(super) fn new(admin: Arc<AdminClient<DefaultClientContext>>, group_id: String, topics: Vec<String>) -> Self {
        OrphanAudit { admin, group_id, topics }
    }

    /// Asks the coordinator what each member owns and the cluster which partitions the topics
    /// have, twice [`CONFIRM_AFTER`] apart when the first look finds orphans: only partitions
    /// orphaned both times count. Dropping the future abandons the audit (a look under way
    /// still ends within its timeout, on its blocking thread).
    pub(super) async fn run(self) -> Result<Finding, AuditError> {
        let Finding::Orphaned { orphaned: first, .. } = self.clone().look().await? else {
            return Ok(Finding::Owned);
        };
        tokio::time::sleep(CONFIRM_AFTER).await;
        Ok(match self.look().await? {
            Finding::Orphaned { orphaned, repairer } => {
                let orphaned: Vec<_> = orphaned.into_iter().filter(|pair| first.contains(pair)).collect();
                if orphaned.is_empty() { Finding::Owned } else { Finding::Orphaned { orphaned, repairer } }
            }
            Finding::Owned => Finding::Owned,
        })
    }

    /// One look, on a blocking thread: librdkafka's calls block.
    async fn look(self) -> Result<Finding, AuditError> {
        Ok(tokio::task::spawn_blocking(move || self.look_now()).await??)
    }

    /// One look at the group and its topics. Blocking.
    fn look_now(&self) -> Result<Finding, KafkaError> {
        let client = self.admin.inner();
        let groups = client.fetch_group_list(Some(&self.group_id), AUDIT_TIMEOUT)?;
        let Some(group) = groups.groups().iter().find(|group| group.name() == self.group_id) else {
            return Ok(Finding::Owned);
        };
        if group.state() != "Stable" || group.protocol_type() != "consumer" {
            return Ok(Finding::Owned);
        }
        let mut members = Vec::with_capacity(group.members().len());
        for member in group.members() {
            // An assignment this cannot read is not judged: better no repair than a wrong one.
            let Some(partitions) = assigned_partitions(member.assignment().unwrap_or_default()) else {
                return Ok(Finding::Owned);
            };
            members.push(MemberAssignment { member_id: member.id().to_owned(), partitions });
        }
        // All topics, not the subscribed ones by name: the admin client is a producer to
        // librdkafka, whose metadata request for a named topic may create it on a broker
        // that auto-creates topics.
        let metadata = client.fetch_metadata(None, AUDIT_TIMEOUT)?;
        let partitions: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none() && self.topics.iter().any(|name| name == topic.name()))
            .flat_map(|topic| topic.partitions().iter().map(|p| (topic.name().to_owned(), p.id())))
            .collect();
        Ok(judge(&members, &partitions))
    }
}

/// One member of a Stable group and the partitions its last assignment gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberAssignment {
    member_id: String,
    partitions: Vec<(String, i32)>,
}

/// Judges a Stable group's members against the partitions their topics have.
fn judge(members: &[MemberAssignment], partitions: &[(String, i32)]) -> Finding {
    let owned = |pair: &(String, i32)| members.iter().any(|member| member.partitions.contains(pair));
    let orphaned: Vec<(String, i32)> = partitions.iter().filter(|pair| !owned(pair)).cloned().collect();
    if orphaned.is_empty() {
        return Finding::Owned;
    }
    let repairer = members
        .iter()
        .min_by(|a, b| a.partitions.len().cmp(&b.partitions.len()).then_with(|| a.member_id.cmp(&b.member_id)))
        .map(|member| member.member_id.clone());
    Finding::Orphaned { orphaned, repairer }
}

/// The partitions of a consumer-protocol `MemberAssignment` (Kafka's
/// `ConsumerProtocolAssignment`, versions 0-3 alike: an int16 version, an array of topics each
/// with an array of int32 partitions, then user data, which is not read). Empty bytes are a
/// member not assigned yet; `None` for bytes that do not parse.
fn assigned_partitions(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut reader = Reader(bytes);
    let _version = reader.i16()?;
    let mut partitions = Vec::new();
    for _ in 0..reader.i32()?.max(0) {
        let length = usize::try_from(reader.i16()?).ok()?;
        let topic = std::str::from_utf8(reader.take(length)?).ok()?.to_owned();
        for _ in 0..reader.i32()?.max(0) {
            partitions.push((topic.clone(), reader.i32()?));
        }
    }
    Some(partitions)
}

/// Big-endian reads off the front of a byte slice, `None` past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Some(taken)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(members: &[(&str, &[(&str, i32)])]) -> Vec<MemberAssignment> {
        members
            .iter()
            .map(|(id, owned)| MemberAssignment {
                member_id: (*id).to_owned(),
                partitions: owned.iter().map(|(topic, p)| ((*topic).to_owned(), *p)).collect(),
            })
            .collect()
    }

    fn topic(name: &str, count: i32) -> Vec<(String, i32)> {
        (0..count).map(|p| (name.to_owned(), p)).collect()
    }

    #[test]
    fn a_group_owning_every_partition_is_left_alone() {
        let group = members(&[("a", &[("jobs", 0), ("jobs", 1)]), ("b", &[("jobs", 2)])]);
        assert_eq!(judge(&group, &topic("jobs", 3)), Finding::Owned);
    }

    #[test]
    fn idle_members_of_a_group_larger_than_its_topic_are_not_orphans() {
        let group = members(&[("a", &[("jobs", 0)]), ("b", &[]), ("c", &[])]);
        assert_eq!(judge(&group, &topic("jobs", 1)), Finding::Owned);
    }

    #[test]
    fn a_lone_member_assigned_nothing_of_an_existing_topic_must_rejoin() {
        let group = members(&[("only", &[])]);
        let finding = judge(&group, &topic("jobs", 2));
        assert_eq!(finding, Finding::Orphaned { orphaned: topic("jobs", 2), repairer: Some("only".to_owned()) });
    }

    #[test]
    fn the_member_owning_least_rejoins_and_every_member_agrees_which() {
        let group = members(&[("b", &[("jobs", 0)]), ("c", &[]), ("a", &[]), ("d", &[("jobs", 1)])]);
        let Finding::Orphaned { orphaned, repairer } = judge(&group, &topic("jobs", 3)) else {
            panic!("jobs/2 has no owner");
        };
        assert_eq!(orphaned, vec![("jobs".to_owned(), 2)]);
        assert_eq!(repairer.as_deref(), Some("a"));
    }

    /// A ConsumerProtocolAssignment as Kafka's Java client writes it (version 3, user data null).
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = 3i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for partition in *partitions {
                bytes.extend(partition.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes());
        bytes
    }

    #[test]
    fn an_assignment_is_read_topic_by_topic() {
        let bytes = assignment(&[("jobs", &[0, 2]), ("metrics", &[1])]);
        let expected = vec![("jobs".to_owned(), 0), ("jobs".to_owned(), 2), ("metrics".to_owned(), 1)];
        assert_eq!(assigned_partitions(&bytes), Some(expected));
    }

    #[test]
    fn a_member_not_assigned_yet_owns_nothing() {
        assert_eq!(assigned_partitions(&[]), Some(Vec::new()));
        assert_eq!(assigned_partitions(&assignment(&[])), Some(Vec::new()));
    }

    #[test]
    fn a_truncated_assignment_is_not_read_as_a_shorter_one() {
        let bytes = assignment(&[("jobs", &[0, 1])]);
        for cut in 1..bytes.len() - 4 {
            assert_eq!(assigned_partitions(&bytes[..cut]), None, "cut at {cut}");
        }
    }
}
