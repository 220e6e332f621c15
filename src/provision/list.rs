//! Lists and filters (RFC 7644 §3.4.2): filters the upstream can answer are
//! pushed down as query parameters; the rest are evaluated here over the
//! upstream's pages, up to the scan cap. Every result is checked against the
//! whole filter here, so push-down can only narrow, never change, an answer.

use serde_json::Value;

use super::ProvisionError;
use super::{Kind, Lookup, Provisioner};
use crate::mapping::MappingError::NotAList;
use crate::mapping::{
    Bindings, Call, FilterParam, PagingStyle, ResourceMapping, TotalSource, UpstreamRequest,
};
use crate::scim::filter::{CompareOp, Filter, matches};
use crate::scim::json::{Scalar, Tree, View};
use crate::scim::path::AttrPath;
use crate::upstream::{CallError, UpstreamClient, UpstreamResponse};

/// A list request after parsing: `startIndex` is 1-based (RFC 7644 §3.4.2.4).
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: u64,
    pub count: Option<u64>,
    pub with_members: bool,
}

/// What a list answered besides its resources, which went to the visitor.
#[derive(Debug, Clone, Copy)]
pub struct ListTotals {
    pub total_results: u64,
    pub start_index: u64,
}

/// Takes a list's resources in order, each as it is made: a page of users
/// is made from the upstream's records without a copy, and written out
/// before they are dropped.
pub type Visit<'v> = dyn for<'t> FnMut(Tree<'t>) + Send + 'v;

/// Upstream records read while paging, and the upstream's total if it gave one.
struct Fetched {
    records: Vec<Value>,
    total: Option<u64>,
}

impl Provisioner {
    /// Hands `visit` the resources of the page `query` asks for, in order.
    pub async fn list(
        &self,
        kind: Kind,
        query: &ListQuery,
        visit: &mut Visit<'_>,
    ) -> Result<ListTotals, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let count = query
            .count
            .unwrap_or(self.limits.max_results as u64)
            .min(self.limits.max_results as u64);
        let start = query.start_index.max(1);
        if query.filter.is_none() {
            return self
                .list_unfiltered(kind, start, count, query.with_members, visit)
                .await;
        }
        if let Some(page) = self
            .membership_page(kind, mapping, query, start, count, visit)
            .await?
        {
            return Ok(page);
        }
        if let Some(page) = self
            .indexed_page(kind, mapping, query, start, count, visit)
            .await?
        {
            return Ok(page);
        }
        let filter = query.filter.as_ref();
        let needs_members = query.with_members || filter.is_some_and(|f| f.references("members"));
        let deleted = |record: View<'_>| {
            mapping
                .soft_delete
                .as_ref()
                .is_some_and(|s| s.marks(record))
        };
        let wanted = |resource: View<'_>| {
            self.in_scope(kind, resource)
                && filter.is_none_or(|f| matches(f, resource, kind.schema()))
        };
        // Only the page asked for is kept; the rest is counted.
        let skip = (start - 1) as usize;
        let mut total_results = 0u64;
        // Counts one more wanted resource; whether it is on the page.
        let mut count_on_page = || {
            total_results += 1;
            total_results as usize > skip && total_results as usize - skip <= count as usize
        };
        if kind == Kind::User {
            // Made once from each record, for the filter and the page, from
            // its page's text, and written out as it is made.
            let (request, _scanning) = self.scan_start(mapping, filter).await?;
            let cap = self.limits.scan_cap;
            let mut pages = Pages::new(&mapping.list, &request, 0, None);
            let mut read = 0usize;
            loop {
                let on_page = |records: &mut dyn Iterator<Item = View<'_>>| {
                    for record in records {
                        read += 1;
                        if read > cap {
                            return Err(too_many_to_scan(mapping, filter, cap));
                        }
                        if deleted(record) {
                            continue;
                        }
                        let resource = mapping.to_scim_tree(record, kind.schema())?;
                        if wanted(resource.view()) && count_on_page() {
                            visit(resource);
                        }
                    }
                    Ok(())
                };
                match pages.next_read(&self.client, on_page).await? {
                    Some(mapped) => mapped?,
                    None => break,
                }
            }
        } else {
            let (records, _scanning) = self.scan(mapping, filter).await?;
            for record in records.into_iter().filter(|record| !deleted(record.into())) {
                let record = self.record(kind, record, needs_members).await?;
                if wanted(View::from(&record.resource)) && count_on_page() {
                    visit(Tree::Owned(without_members(record.resource, query)));
                }
            }
        }
        Ok(ListTotals {
            total_results,
            start_index: start,
        })
    }

    /// The answer to a filter the upstream cannot take but the look-up
    /// index can narrow: each candidate is read by id and checked against
    /// the whole filter (and the connection's scope), so a stale entry is
    /// left out. `None` where the index cannot answer (or is not ready).
    async fn indexed_page(
        &self,
        kind: Kind,
        mapping: &ResourceMapping,
        query: &ListQuery,
        start: u64,
        count: u64,
        visit: &mut Visit<'_>,
    ) -> Result<Option<ListTotals>, ProvisionError> {
        let (Some(index), Some(filter)) = (self.index(kind), &query.filter) else {
            return Ok(None);
        };
        if push_down(filter, &mapping.filters).is_some() {
            return Ok(None);
        }
        let Some((at, value)) = index.answerable(filter) else {
            return Ok(None);
        };
        let Lookup::Candidates(mut candidates) = index.lookup(at, value).await else {
            return Ok(None);
        };
        if candidates.len() > self.limits.scan_cap {
            return Err(ProvisionError::TooMany(format!(
                "the filter `{filter}` matches more than {} indexed records; narrow it",
                self.limits.scan_cap
            )));
        }
        // In id order, so pages of one answer line up.
        candidates.sort();
        let needs_members = query.with_members || filter.references("members");
        let mut matched = Vec::new();
        for id in &candidates {
            let record = match self.get(kind, id, needs_members).await {
                Ok(record) => record,
                Err(ProvisionError::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            if matches(filter, &record.resource, kind.schema()) {
                matched.push(record.resource);
            }
        }
        let total_results = matched.len() as u64;
        for resource in matched
            .into_iter()
            .skip((start - 1) as usize)
            .take(count as usize)
        {
            visit(Tree::Owned(without_members(resource, query)));
        }
        Ok(Some(ListTotals {
            total_results,
            start_index: start,
        }))
    }

    /// The answer to an IdP's membership check (`id eq "G" and members[value
    /// eq "U"]`, members not returned) from the group and that one
    /// membership, where the mapping can tell it without the member list;
    /// `None` where the filter is another or the mapping cannot.
    async fn membership_page(
        &self,
        kind: Kind,
        mapping: &ResourceMapping,
        query: &ListQuery,
        start: u64,
        count: u64,
        visit: &mut Visit<'_>,
    ) -> Result<Option<ListTotals>, ProvisionError> {
        if kind != Kind::Group || query.with_members {
            return Ok(None);
        }
        let (Some((group, member)), Some(members)) = (
            query.filter.as_ref().and_then(membership_check),
            &mapping.members,
        ) else {
            return Ok(None);
        };
        let record = match self.get(Kind::Group, group, false).await {
            Ok(record) => Some(record),
            Err(ProvisionError::NotFound { .. }) => None,
            Err(error) => return Err(error),
        };
        let is_member = match &record {
            Some(record) => {
                self.has_member(members, group, &record.upstream, member)
                    .await?
            }
            None => false,
        };
        if let Some(record) = record
            && is_member
            && start == 1
            && count > 0
        {
            visit(Tree::Owned(record.resource));
        }
        Ok(Some(ListTotals {
            total_results: u64::from(is_member),
            start_index: start,
        }))
    }

    /// The records `filter` may match (all of them without one), pushed down
    /// to the upstream where the mapping allows, read while holding one of
    /// the upstream's scan slots: it is returned with them, since the
    /// records are the memory it bounds.
    async fn scan(
        &self,
        mapping: &ResourceMapping,
        filter: Option<&Filter>,
    ) -> Result<(Vec<Value>, tokio::sync::SemaphorePermit<'_>), ProvisionError> {
        let (request, scanning) = self.scan_start(mapping, filter).await?;
        let cap = self.limits.scan_cap;
        let fetched = self
            .fetch(&mapping.list, &request, 0, None, cap + 1)
            .await?;
        if fetched.records.len() > cap {
            return Err(too_many_to_scan(mapping, filter, cap));
        }
        Ok((fetched.records, scanning))
    }

    /// A scan's list request, `filter` pushed down where the mapping
    /// allows, and one of the upstream's scan slots, held while its
    /// records are read.
    async fn scan_start(
        &self,
        mapping: &ResourceMapping,
        filter: Option<&Filter>,
    ) -> Result<(UpstreamRequest, tokio::sync::SemaphorePermit<'_>), ProvisionError> {
        let mut request = mapping.list.request(Bindings::default())?;
        if let Some((param, value)) = filter.and_then(|f| push_down(f, &mapping.filters)) {
            request.query.retain(|(k, _)| *k != param);
            request.query.push((param, value));
        }
        // A scan holds upstream records; bound how many run at once.
        let scanning = self
            .shared
            .scans
            .acquire()
            .await
            .map_err(|_| ProvisionError::ShuttingDown)?;
        Ok((request, scanning))
    }

    /// The upstream id of a user, in this connection's scope or not, whose
    /// userName is `user_name` (compared case-insensitively, as RFC 7643
    /// §4.1.1 has it): a create must not make a second one.
    pub(super) async fn user_name_holder(
        &self,
        user_name: &str,
    ) -> Result<Option<String>, ProvisionError> {
        let mapping = self.mapping(Kind::User)?;
        let filter = Filter::Compare {
            path: AttrPath {
                uri: None,
                name: "userName".into(),
                sub: None,
            },
            op: CompareOp::Eq,
            value: Value::from(user_name),
        };
        if let Some(holder) = self.indexed_user_name_holder(&filter, user_name).await {
            return Ok(Some(holder));
        }
        // A miss in the index may be stale, and this check is what keeps
        // userNames unique: only the upstream's own list can clear a name.
        let (records, _scanning) = self.scan(mapping, Some(&filter)).await?;
        for record in &records {
            if mapping
                .soft_delete
                .as_ref()
                .is_some_and(|s| s.marks(record))
            {
                continue;
            }
            let resource = mapping.to_scim(record, Kind::User.schema())?;
            let same = resource
                .get("userName")
                .and_then(Value::as_str)
                .is_some_and(|held| held.to_lowercase() == user_name.to_lowercase());
            if same {
                return Ok(Some(mapping.upstream_id(record)?));
            }
        }
        Ok(None)
    }

    /// A holder of `user_name` the look-up index knows of, read back to
    /// confirm it (in any connection's scope, not soft-deleted).
    async fn indexed_user_name_holder(&self, filter: &Filter, user_name: &str) -> Option<String> {
        let mapping = self.mapping(Kind::User).ok()?;
        let index = self.index(Kind::User)?;
        let (at, _) = index.answerable(filter)?;
        let Lookup::Candidates(candidates) = index.lookup(at, user_name).await else {
            return None;
        };
        for id in candidates {
            // A failed read is no answer: the scan decides.
            let Ok(record) = self.get_any(Kind::User, &id).await else {
                continue;
            };
            let deleted = mapping
                .soft_delete
                .as_ref()
                .is_some_and(|s| s.marks(&record.upstream));
            let same = record
                .resource
                .get("userName")
                .and_then(Value::as_str)
                .is_some_and(|held| held.to_lowercase() == user_name.to_lowercase());
            if same && !deleted {
                return Some(id.to_string());
            }
        }
        None
    }

    async fn list_unfiltered(
        &self,
        kind: Kind,
        start: u64,
        count: u64,
        with_members: bool,
        visit: &mut Visit<'_>,
    ) -> Result<ListTotals, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let request = mapping.list.request(Bindings::default())?;
        let offset = start - 1;
        let reports_total = mapping
            .list
            .paging
            .as_ref()
            .is_some_and(|p| p.total != TotalSource::Unknown);
        let (window, limit) = if reports_total {
            // count=0 asks only for totalResults (RFC 7644 §3.4.2.4).
            (offset, count as usize)
        } else {
            // No total upstream: read to the end (up to the scan cap) and count.
            (0, self.limits.scan_cap)
        };
        // Users outside the connection's scope are left out. Read to the end,
        // the total counts only the rest; paged by the upstream, a page may
        // hold fewer than `count` and the upstream's total counts them too
        // (a number, never a user): scanning every page to count exactly
        // would make each page of an IdP's import cost a full listing.
        let totals = |upstream_total: Option<u64>, visible: usize| ListTotals {
            total_results: match upstream_total {
                Some(total) if reports_total => total,
                _ => visible as u64,
            },
            start_index: start,
        };
        let skip = if reports_total { 0 } else { offset as usize };
        if kind == Kind::Group {
            // A group is made a resource only on the page: its members may
            // take calls of their own.
            let fetched = self
                .fetch(&mapping.list, &request, window, Some(count.max(1)), limit)
                .await?;
            let totals = totals(fetched.total, fetched.records.len());
            for record in fetched.records.into_iter().skip(skip).take(count as usize) {
                visit(Tree::Owned(
                    self.record(kind, record, with_members).await?.resource,
                ));
            }
            return Ok(totals);
        }
        // A user is made a resource once, for its scope and the page, from
        // its page's text, and written out as it is made.
        let mut pages = Pages::new(&mapping.list, &request, window, Some(count.max(1)));
        let (mut read, mut visible) = (0usize, 0usize);
        loop {
            let on_page = |records: &mut dyn Iterator<Item = View<'_>>| {
                for record in records.take(limit - read) {
                    read += 1;
                    let resource = mapping.to_scim_tree(record, kind.schema())?;
                    if self.in_scope(kind, resource.view()) {
                        visible += 1;
                        if visible > skip && visible - skip <= count as usize {
                            visit(resource);
                        }
                    }
                }
                Ok::<_, ProvisionError>(())
            };
            match pages.next_read(&self.client, on_page).await? {
                Some(mapped) => mapped?,
                None => break,
            }
            // The first page is always read, even for none: it carries the total.
            if read >= limit {
                break;
            }
        }
        Ok(totals(pages.total, visible))
    }

    /// Reads up to `limit` records starting at `offset` (0-based) through the
    /// call's paging; `window` hints the page size wanted.
    async fn fetch(
        &self,
        call: &Call,
        request: &UpstreamRequest,
        offset: u64,
        window: Option<u64>,
        limit: usize,
    ) -> Result<Fetched, ProvisionError> {
        let mut records = Vec::new();
        let total = walk_pages(&self.client, call, request, offset, window, |page| {
            records.extend(page.into_iter().take(limit - records.len()));
            Ok(records.len() < limit)
        })
        .await?;
        Ok(Fetched { records, total })
    }

    /// Every record of a list call (members of a group), bounded by the scan cap.
    pub(super) async fn fetch_all(
        &self,
        call: &Call,
        bindings: Bindings<'_>,
    ) -> Result<Vec<Value>, ProvisionError> {
        let request = call.request(bindings)?;
        let cap = self.limits.scan_cap;
        let fetched = self.fetch(call, &request, 0, None, cap + 1).await?;
        if fetched.records.len() > cap {
            return Err(ProvisionError::TooMany(format!(
                "more than {cap} records to read; the gateway's scan_cap bounds this"
            )));
        }
        Ok(fetched.records)
    }
}

/// Visits every record of a list call, page by page, holding one page at
/// a time: the look-up index reads a whole upstream this way.
pub(super) async fn fetch_each(
    client: &UpstreamClient,
    call: &Call,
    request: &UpstreamRequest,
    mut visit: impl FnMut(&Value) -> Result<(), ProvisionError>,
) -> Result<(), ProvisionError> {
    walk_pages(client, call, request, 0, None, |page| {
        page.iter().try_for_each(&mut visit)?;
        Ok(true)
    })
    .await
    .map(drop)
}

/// Hands `on_page` the records from `offset` (0-based) on, a page at a
/// time through the call's paging, until it answers false or the list
/// ends; `window` hints the page size wanted. Returns the upstream's total
/// if it gave one.
pub(super) async fn walk_pages(
    client: &UpstreamClient,
    call: &Call,
    request: &UpstreamRequest,
    offset: u64,
    window: Option<u64>,
    mut on_page: impl FnMut(Vec<Value>) -> Result<bool, ProvisionError>,
) -> Result<Option<u64>, ProvisionError> {
    let mut pages = Pages::new(call, request, offset, window);
    while let Some(page) = pages.next(client).await? {
        if !on_page(page)? {
            break;
        }
    }
    Ok(pages.total)
}

/// A list call's pages, read one at a time as they are asked for.
pub(super) struct Pages<'c> {
    call: &'c Call,
    request: UpstreamRequest,
    /// The next page's query; `None` once the list has ended.
    next_query: Option<Vec<(String, String)>>,
    size: u64,
    seekable: bool,
    /// Where the next page starts, and how much of it to skip.
    position: u64,
    skip: usize,
    /// The upstream's total, once a page has told it.
    pub(super) total: Option<u64>,
}

impl<'c> Pages<'c> {
    pub(super) fn new(
        call: &'c Call,
        request: &UpstreamRequest,
        offset: u64,
        window: Option<u64>,
    ) -> Self {
        let mut pages = Pages {
            call,
            request: request.clone(),
            next_query: Some(Vec::new()),
            size: 0,
            seekable: false,
            position: 0,
            skip: offset as usize,
            total: None,
        };
        let Some(paging) = &call.paging else {
            return pages;
        };
        let max = paging.max_page_size;
        pages.size = match window {
            // A window that lines up with pages is fetched as exactly those pages.
            Some(w) if w <= max && (paging.arbitrary_offsets() || offset.is_multiple_of(w)) => w,
            _ => max,
        };
        // Sequential styles (cursor, link) start at the beginning and skip.
        pages.seekable = paging.window(0, pages.size).is_some();
        pages.position = match (pages.seekable, paging.arbitrary_offsets()) {
            (false, _) => 0,
            (true, true) => offset,
            (true, false) => offset / pages.size * pages.size,
        };
        pages.skip = (offset - pages.position) as usize;
        pages.next_query = Some(
            paging
                .window(pages.position, pages.size)
                .unwrap_or_else(|| paging.first_query(pages.size)),
        );
        pages
    }

    /// The next page's records (after any skipped), or `None` at the end.
    /// The first call is always made, even for an empty window: it carries
    /// the total.
    pub(super) async fn next(
        &mut self,
        client: &UpstreamClient,
    ) -> Result<Option<Vec<Value>>, ProvisionError> {
        let Some(response) = self.answer(client, false).await? else {
            return Ok(None);
        };
        let body = View::from(&response.body);
        let received = self.call.items_in(body).ok_or(NotAList)?.elements().count();
        let skipped = self.turn(&response.headers, body, received);
        let mut page = self.call.take_items(response.body).ok_or(NotAList)?;
        page.drain(..skipped);
        Ok(Some(page))
    }

    /// [`Self::next`]'s records handed to `on_page` as views of a tree read
    /// from the answer's text, which they borrow: a page only mapped and
    /// written out is never copied into values.
    pub(super) async fn next_read<R>(
        &mut self,
        client: &UpstreamClient,
        on_page: impl for<'t> FnOnce(&mut dyn Iterator<Item = View<'t>>) -> R,
    ) -> Result<Option<R>, ProvisionError> {
        let Some(response) = self.answer(client, true).await? else {
            return Ok(None);
        };
        let tree = response.tree().map_err(CallError::Failed)?;
        let body = tree.view();
        let items = self.call.items_in(body).ok_or(NotAList)?;
        let skipped = self.turn(&response.headers, body, items.elements().count());
        Ok(Some(on_page(&mut items.elements().skip(skipped))))
    }

    /// The next page's answer (its body kept as text if `as_text`), or
    /// `None` once the list has ended.
    async fn answer(
        &mut self,
        client: &UpstreamClient,
        as_text: bool,
    ) -> Result<Option<UpstreamResponse>, ProvisionError> {
        let Some(page_query) = self.next_query.take() else {
            return Ok(None);
        };
        let mut page_request = self.request.clone();
        if self
            .call
            .paging
            .as_ref()
            .is_some_and(|paging| paging.style == PagingStyle::Link)
            && self.position > 0
        {
            // A Link URL's query is the whole next query.
            page_request.query = page_query;
        } else {
            page_request.query.extend(page_query);
        }
        let answered = match as_text {
            true => client.call_for_text(&page_request).await?,
            false => client.call(&page_request).await?,
        };
        Ok(Some(answered))
    }

    /// Takes in what a page's answer says of the list, `received` records
    /// long: the total, where the next page starts and its query. Returns
    /// how many of its records are skipped.
    fn turn(&mut self, headers: &http::HeaderMap, body: View<'_>, received: usize) -> usize {
        let Some(paging) = &self.call.paging else {
            // One answer is the whole list.
            self.total = Some(received as u64);
            return self.skip.min(received);
        };
        if self.total.is_none() {
            self.total = read_total(&paging.total, headers, body);
        }
        // A cursor or a Link is read from this answer.
        let next_query = match self.seekable {
            true => None,
            false => paging.next_query(self.size, headers, body),
        };
        let skipped = self.skip.min(received);
        self.skip -= skipped;
        self.position += if self.seekable {
            self.size
        } else {
            received as u64
        };
        self.next_query = if received == 0 {
            None
        } else if self.seekable {
            let exhausted =
                (received as u64) < self.size || self.total.is_some_and(|t| self.position >= t);
            match exhausted {
                true => None,
                false => paging.window(self.position, self.size),
            }
        } else {
            next_query
        };
        skipped
    }
}

/// The refusal of a scan of more than `cap` records: what the operator (or
/// the IdP) can change so that it is no scan.
fn too_many_to_scan(
    mapping: &ResourceMapping,
    filter: Option<&Filter>,
    cap: usize,
) -> ProvisionError {
    let pushable = mapping
        .filters
        .iter()
        .map(|f| f.path.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let answerable = match (pushable.is_empty(), mapping.index.as_ref()) {
        (false, _) => format!("filter with `eq` on one of: {pushable}"),
        (true, Some(index)) => format!(
            "the look-up index answers `eq` on: {}",
            index
                .attributes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (true, None) => "the mapping declares no `filters` the upstream answers".into(),
    };
    let remedy = match mapping.index {
        None => {
            "; a look-up index ([users.index] or [groups.index] in the mapping) \
                 answers `eq` look-ups without a scan"
        }
        Some(_) => "",
    };
    ProvisionError::TooMany(match filter {
        Some(filter) => format!(
            "the filter `{filter}` cannot be answered by the upstream and would scan \
             more than {cap} records; {answerable}{remedy}"
        ),
        None => format!("more than {cap} records to scan"),
    })
}

/// A listed group's members go only to a list that asks for them.
fn without_members(mut resource: Value, query: &ListQuery) -> Value {
    if !query.with_members
        && let Some(object) = resource.as_object_mut()
    {
        object.remove("members");
    }
    resource
}

/// `G` and `U` of `id eq "G" and members[value eq "U"]`, either way round.
fn membership_check(filter: &Filter) -> Option<(&str, &str)> {
    let Filter::And(left, right) = filter else {
        return None;
    };
    fn id(filter: &Filter) -> Option<&str> {
        match filter {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::String(id),
            } if path.uri.is_none()
                && path.sub.is_none()
                && path.name.eq_ignore_ascii_case("id") =>
            {
                Some(id.as_str())
            }
            _ => None,
        }
    }
    fn member(filter: &Filter) -> Option<&str> {
        match filter {
            Filter::ValuePath { path, filter }
                if path.uri.is_none() && path.name.eq_ignore_ascii_case("members") =>
            {
                match filter.as_ref() {
                    Filter::Compare {
                        path,
                        op: CompareOp::Eq,
                        value: Value::String(member),
                    } if path.sub.is_none() && path.name.eq_ignore_ascii_case("value") => {
                        Some(member.as_str())
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
    id(left)
        .zip(member(right))
        .or_else(|| id(right).zip(member(left)))
}

fn read_total(source: &TotalSource, headers: &http::HeaderMap, body: View<'_>) -> Option<u64> {
    match source {
        TotalSource::Header(name) => headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
        TotalSource::Pointer(pointer) => match body.pointer(pointer)?.scalar() {
            Scalar::Number(number) => number.as_u64(),
            _ => None,
        },
        TotalSource::Unknown => None,
    }
}

/// The query parameter for an `eq` on a mapped attribute, found at the top
/// of the filter or in one branch of a top-level `and`.
fn push_down(filter: &Filter, params: &[FilterParam]) -> Option<(String, String)> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Value::String(value),
        } => params
            .iter()
            .find(|p| p.path.same_attribute(path))
            .map(|p| (p.param.clone(), value.clone())),
        // `emails[type eq "work"].value eq "x"` and `emails[value eq "x"]`.
        Filter::ValuePath { path, filter } => match filter.as_ref() {
            Filter::Compare {
                path: inner,
                op: CompareOp::Eq,
                value,
            } if inner.uri.is_none() && inner.sub.is_none() => {
                let flattened = Filter::Compare {
                    path: crate::scim::path::AttrPath {
                        uri: path.uri.clone(),
                        name: path.name.clone(),
                        sub: Some(inner.name.clone()),
                    },
                    op: CompareOp::Eq,
                    value: value.clone(),
                };
                push_down(&flattened, params)
            }
            Filter::And(left, right) => push_down(
                &Filter::ValuePath {
                    path: path.clone(),
                    filter: left.clone(),
                },
                params,
            )
            .or_else(|| {
                push_down(
                    &Filter::ValuePath {
                        path: path.clone(),
                        filter: right.clone(),
                    },
                    params,
                )
            }),
            _ => None,
        },
        Filter::And(left, right) => push_down(left, params).or_else(|| push_down(right, params)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_id_and_one_member_value_make_a_membership_check() {
        let check = |text: &str| {
            let filter = crate::scim::filter::parse_filter(text).unwrap();
            membership_check(&filter).map(|(g, m)| (g.to_string(), m.to_string()))
        };
        let pair = Some(("G".to_string(), "U".to_string()));
        assert_eq!(check(r#"id eq "G" and members[value eq "U"]"#), pair);
        assert_eq!(check(r#"members[value eq "U"] and id eq "G""#), pair);
        for other in [
            r#"id eq "G" or members[value eq "U"]"#,
            r#"id eq "G" and members[value eq "U"] and displayName eq "x""#,
            r#"id eq "G" and members.value eq "U""#,
            r#"id eq "G" and members[display eq "U"]"#,
            r#"id eq "G" and members[value ne "U"]"#,
            r#"id ne "G" and members[value eq "U"]"#,
            r#"externalId eq "G" and members[value eq "U"]"#,
        ] {
            assert_eq!(check(other), None, "{other}");
        }
    }

    use super::*;
    use crate::scim::filter::parse_filter;
    use crate::scim::path::AttrPath;

    fn params() -> Vec<FilterParam> {
        vec![
            FilterParam {
                path: AttrPath::parse("userName").unwrap(),
                param: "login".into(),
            },
            FilterParam {
                path: AttrPath::parse("emails.value").unwrap(),
                param: "email".into(),
            },
        ]
    }

    fn pushed(filter: &str) -> Option<(String, String)> {
        push_down(&parse_filter(filter).unwrap(), &params())
    }

    #[test]
    fn user_name_eq_is_pushed_in_any_case() {
        assert_eq!(
            pushed(r#"USERNAME eq "Alice@example.com""#),
            Some(("login".into(), "Alice@example.com".into()))
        );
    }

    #[test]
    fn one_branch_of_and_is_pushed() {
        assert_eq!(
            pushed(r#"active eq true and userName eq "a""#),
            Some(("login".into(), "a".into()))
        );
    }

    #[test]
    fn or_and_other_operators_are_not_pushed() {
        assert_eq!(pushed(r#"userName eq "a" or userName eq "b""#), None);
        assert_eq!(pushed(r#"userName co "a""#), None);
        assert_eq!(pushed(r#"not (userName eq "a")"#), None);
    }

    #[test]
    fn value_path_email_filters_are_pushed() {
        assert_eq!(
            pushed(r#"emails[type eq "work"].value eq "a@x.io""#),
            Some(("email".into(), "a@x.io".into()))
        );
        assert_eq!(
            pushed(r#"emails[value eq "a@x.io"]"#),
            Some(("email".into(), "a@x.io".into()))
        );
    }
}
