//! Whether an archived batch is exactly rkyv's own encoding of its content,
//! decided without deserializing it.
//!
//! [`Canonical`] wraps an archived value and serializes it as the owned
//! value would be (same archived type, same order of out-of-line data, the
//! same rkyv helpers the derive calls), so its output equals `rkyv::to_bytes`
//! of the deserialized batch byte for byte; [`Compare`] is a writer that
//! checks that output against the received payload as it is produced, so
//! nothing is allocated but the serializer's small scratch arena (one per
//! thread, reused). The tests check the equivalence against `to_bytes` for
//! arbitrary batches; a field added to a batch type fails to compile here
//! (the `munge!` patterns name every field) until it is serialized too.
//!
//! Records with only plain fields (clicks, refusals, verdicts) are copied
//! out field by field (`Deserialize`, no allocation) and serialized as
//! owned values, so their padding is written as zeros, never copied over.

use std::cell::RefCell;

use rkyv::munge::munge;
use rkyv::rancor::{fail, Fallible, Source, Strategy};
use rkyv::ser::allocator::Arena;
use rkyv::ser::{Allocator, Positional, Writer};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{rancor, Archive, Deserialize, Place, Serialize};

use super::{ArchivedBatch, ArchivedDimRow, ArchivedSecondRow, ArchivedTenantRows, ClickRecord, RefusedRecord, VerdictRow};

/// Whether `payload` is exactly the encoding of the batch archived in it.
pub fn is_own_encoding(batch: &ArchivedBatch, payload: &[u8]) -> bool {
    thread_local! {
        static ARENA: RefCell<Arena> = RefCell::new(Arena::new());
    }
    ARENA.with_borrow_mut(|arena| {
        let mut serializer = rkyv::ser::Serializer::new(Compare { expected: payload, pos: 0 }, arena.acquire(), ());
        let written = rkyv::api::serialize_using::<_, rancor::Error>(&Canonical(batch), &mut serializer);
        written.is_ok() && serializer.into_writer().pos == payload.len()
    })
}

/// A writer that only checks each write against the expected bytes.
struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("differs from the received bytes at {0}")]
struct Differs(usize);

impl Positional for Compare<'_> {
    fn pos(&self) -> usize {
        self.pos
    }
}

impl<E: Source> Writer<E> for Compare<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        let end = self.pos + bytes.len();
        if self.expected.get(self.pos..end) != Some(bytes) {
            fail!(Differs(self.pos));
        }
        self.pos = end;
        Ok(())
    }
}

/// An archived value, serialized as its owned value would be.
struct Canonical<'a, T>(&'a T);

/// Plain records: copied out (no allocation) and serialized as owned.
fn owned<'a, A, T, I>(items: I) -> impl ExactSizeIterator<Item = T> + Clone + 'a
where
    A: Deserialize<T, Strategy<(), rancor::Error>> + 'a,
    I: ExactSizeIterator<Item = &'a A> + Clone + 'a,
{
    items.map(|a| a.deserialize(Strategy::wrap(&mut ())).expect("plain records deserialize infallibly"))
}

impl Archive for Canonical<'_, ArchivedBatch> {
    type Archived = ArchivedBatch;
    type Resolver = (StringResolver, VecResolver);

    fn resolve(&self, (edge_r, tenants_r): Self::Resolver, out: Place<ArchivedBatch>) {
        let b = self.0;
        munge!(let ArchivedBatch { edge, seq, sealed_at_ms, low_watermark_ms, wal_from, wal_to, tenants } = out);
        ArchivedString::resolve_from_str(b.edge.as_str(), edge_r, edge);
        seq.write(b.seq);
        sealed_at_ms.write(b.sealed_at_ms);
        low_watermark_ms.write(b.low_watermark_ms);
        wal_from.write(b.wal_from);
        wal_to.write(b.wal_to);
        ArchivedVec::resolve_from_len(b.tenants.len(), tenants_r, tenants);
    }
}

impl<S: Fallible + Writer + Allocator + ?Sized> Serialize<S> for Canonical<'_, ArchivedBatch>
where
    S::Error: Source,
{
    fn serialize(&self, s: &mut S) -> Result<Self::Resolver, S::Error> {
        let b = self.0;
        let edge = ArchivedString::serialize_from_str(b.edge.as_str(), s)?;
        let tenants = ArchivedVec::serialize_from_iter::<Canonical<ArchivedTenantRows>, _, _>(b.tenants.iter().map(Canonical), s)?;
        Ok((edge, tenants))
    }
}

impl Archive for Canonical<'_, ArchivedTenantRows> {
    type Archived = ArchivedTenantRows;
    type Resolver = (StringResolver, [VecResolver; 5]);

    fn resolve(&self, (tenant_r, [rows_r, clicks_r, refused_r, dims_r, verdicts_r]): Self::Resolver, out: Place<ArchivedTenantRows>) {
        let t = self.0;
        munge!(let ArchivedTenantRows { tenant, rows, clicks, refused, dims, verdicts } = out);
        ArchivedString::resolve_from_str(t.tenant.as_str(), tenant_r, tenant);
        ArchivedVec::resolve_from_len(t.rows.len(), rows_r, rows);
        ArchivedVec::resolve_from_len(t.clicks.len(), clicks_r, clicks);
        ArchivedVec::resolve_from_len(t.refused.len(), refused_r, refused);
        ArchivedVec::resolve_from_len(t.dims.len(), dims_r, dims);
        ArchivedVec::resolve_from_len(t.verdicts.len(), verdicts_r, verdicts);
    }
}

impl<S: Fallible + Writer + Allocator + ?Sized> Serialize<S> for Canonical<'_, ArchivedTenantRows>
where
    S::Error: Source,
{
    fn serialize(&self, s: &mut S) -> Result<Self::Resolver, S::Error> {
        let t = self.0;
        // In field order, as the derive writes them.
        let tenant = ArchivedString::serialize_from_str(t.tenant.as_str(), s)?;
        let rows = ArchivedVec::serialize_from_iter::<Canonical<ArchivedSecondRow>, _, _>(t.rows.iter().map(Canonical), s)?;
        let clicks = ArchivedVec::serialize_from_iter::<ClickRecord, _, _>(owned(t.clicks.iter()), s)?;
        let refused = ArchivedVec::serialize_from_iter::<RefusedRecord, _, _>(owned(t.refused.iter()), s)?;
        let dims = ArchivedVec::serialize_from_iter::<Canonical<ArchivedDimRow>, _, _>(t.dims.iter().map(Canonical), s)?;
        let verdicts = ArchivedVec::serialize_from_iter::<VerdictRow, _, _>(owned(t.verdicts.iter()), s)?;
        Ok((tenant, [rows, clicks, refused, dims, verdicts]))
    }
}

impl Archive for Canonical<'_, ArchivedSecondRow> {
    type Archived = ArchivedSecondRow;
    type Resolver = VecResolver;

    fn resolve(&self, hashes_r: VecResolver, out: Place<ArchivedSecondRow>) {
        let r = self.0;
        munge!(let ArchivedSecondRow { ad_id, campaign_id, second, clicks, spend_micros, user_hashes } = out);
        ad_id.write(r.ad_id);
        campaign_id.write(r.campaign_id);
        second.write(r.second);
        clicks.write(r.clicks);
        spend_micros.write(r.spend_micros);
        ArchivedVec::resolve_from_len(r.user_hashes.len(), hashes_r, user_hashes);
    }
}

impl<S: Fallible + Writer + Allocator + ?Sized> Serialize<S> for Canonical<'_, ArchivedSecondRow>
where
    S::Error: Source,
{
    fn serialize(&self, s: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::serialize_from_slice(self.0.user_hashes.as_slice(), s)
    }
}

impl Archive for Canonical<'_, ArchivedDimRow> {
    type Archived = ArchivedDimRow;
    type Resolver = (StringResolver, StringResolver);

    fn resolve(&self, (dimension_r, value_r): Self::Resolver, out: Place<ArchivedDimRow>) {
        let d = self.0;
        munge!(let ArchivedDimRow { ad_id, campaign_id, second, dimension, value, clicks, spend_micros } = out);
        ad_id.write(d.ad_id);
        campaign_id.write(d.campaign_id);
        second.write(d.second);
        ArchivedString::resolve_from_str(d.dimension.as_str(), dimension_r, dimension);
        ArchivedString::resolve_from_str(d.value.as_str(), value_r, value);
        clicks.write(d.clicks);
        spend_micros.write(d.spend_micros);
    }
}

impl<S: Fallible + Writer + Allocator + ?Sized> Serialize<S> for Canonical<'_, ArchivedDimRow>
where
    S::Error: Source,
{
    fn serialize(&self, s: &mut S) -> Result<Self::Resolver, S::Error> {
        let dimension = ArchivedString::serialize_from_str(self.0.dimension.as_str(), s)?;
        let value = ArchivedString::serialize_from_str(self.0.value.as_str(), s)?;
        Ok((dimension, value))
    }
}
