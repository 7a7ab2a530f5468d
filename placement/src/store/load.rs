//! Reading the store into memory: the whole [`State`] at start-up
//! ([`load`]), or only the rows a change feed names ([`reload_changed`]),
//! so a replica applies another replica's writes in place. Both read rows
//! through the same readers.

use std::collections::{BTreeSet, HashMap};

use super::change_set::ChangeSet;
use super::{Backend, Row, Val};
use crate::error::Result;
use crate::model::{Allocation, ClassId, Consumer, Inventory, InventoryRecord, Names, Provider, RpId, State, Ts};

const PROVIDERS: &str =
    "SELECT id, uuid, name, generation, parent_id, root_id, created_at, updated_at FROM resource_providers";
const INVENTORIES: &str = "SELECT rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at FROM inventories";
const CONSUMERS: &str =
    "SELECT uuid, project, \"user\", generation, consumer_type, created_at, updated_at FROM consumers";

fn provider(r: &dyn Row) -> Result<Provider> {
    let generation = r.int(3)?;
    Ok(Provider {
        id: r.int(0)? as u32,
        uuid: r.text(1)?,
        name: r.text(2)?,
        generation,
        parent: r.opt_int(4)?.map(|v| v as u32),
        root: r.int(5)? as u32,
        children: Default::default(),
        inventories: vec![],
        traits: Default::default(),
        aggregates: Default::default(),
        created_at: r.int(6)?,
        updated_at: r.int(7)?,
        stored_generation: Some(generation),
    })
}

/// An inventory row: provider, class name, inventory, created, updated.
type InventoryRow = (u32, String, Inventory, Ts, Ts);

fn inventory(r: &dyn Row) -> Result<InventoryRow> {
    let inv = Inventory {
        total: r.int(2)?,
        reserved: r.int(3)?,
        min_unit: r.int(4)?,
        max_unit: r.int(5)?,
        step_size: r.int(6)?,
        allocation_ratio: r.real(7)?,
    };
    Ok((r.int(0)? as u32, r.text(1)?, inv, r.int(8)?, r.int(9)?))
}

fn consumer(r: &dyn Row) -> Result<Consumer> {
    let generation = r.int(3)?;
    Ok(Consumer {
        uuid: r.text(0)?,
        project: r.text(1)?,
        user: r.text(2)?,
        generation,
        consumer_type: r.opt_text(4)?,
        allocations: vec![],
        created_at: r.int(5)?,
        updated_at: r.int(6)?,
        stored_generation: Some(generation),
    })
}

/// Reads every row `sql` selects with `args` through `read`.
fn rows<T>(b: &mut dyn Backend, sql: &str, args: &[Val<'_>], read: fn(&dyn Row) -> Result<T>) -> Result<Vec<T>> {
    let mut out = vec![];
    b.query(sql, args, &mut |r| {
        out.push(read(r)?);
        Ok(())
    })?;
    Ok(out)
}

fn pair(r: &dyn Row) -> Result<(u32, String)> {
    Ok((r.int(0)? as u32, r.text(1)?))
}

fn named(r: &dyn Row) -> Result<(String, Ts, Ts)> {
    Ok((r.text(0)?, r.int(1)?, r.int(2)?))
}

fn created_at(b: &mut dyn Backend) -> Result<Ts> {
    let mut created = 0;
    b.query("SELECT value FROM meta WHERE key = 'created_at'", &[], &mut |r| {
        created = r.text(0)?.parse().unwrap_or(0);
        Ok(())
    })?;
    Ok(created)
}

/// Rebuilds the whole in-memory state from the database.
pub(super) fn load(b: &mut dyn Backend) -> Result<State> {
    let order = b.order_column();
    let created = created_at(b)?;
    let mut s = State::with_standard_names(created);
    for (name, c, u) in
        rows(b, &format!("SELECT name, created_at, updated_at FROM resource_classes ORDER BY {order}"), &[], named)?
    {
        let id = s.classes.intern(&name, c);
        s.classes.updated_at[id as usize] = u;
    }
    for (name, c, u) in
        rows(b, &format!("SELECT name, created_at, updated_at FROM traits ORDER BY {order}"), &[], named)?
    {
        let id = s.traits.intern(&name, c);
        s.traits.updated_at[id as usize] = u;
    }
    for p in rows(b, &format!("{PROVIDERS} ORDER BY id"), &[], provider)? {
        put_provider(&mut s, p);
    }
    let ids: Vec<(u32, Option<u32>)> = s.live_providers().map(|p| (p.id, p.parent)).collect();
    for (id, parent) in ids {
        if let Some(parent) = parent {
            s.provider_mut(parent).children.insert(id);
        }
    }
    for row in rows(b, INVENTORIES, &[], inventory)? {
        put_inventory(&mut s, row, &HashMap::new());
    }
    for (rp, name) in rows(b, "SELECT rp_id, trait FROM provider_traits", &[], pair)? {
        let t = s.traits.intern(&name, created);
        s.provider_mut(rp).traits.insert(t);
    }
    for (rp, agg) in rows(b, "SELECT rp_id, aggregate FROM provider_aggregates", &[], pair)? {
        put_aggregate(&mut s, rp, &agg, created);
    }
    for c in rows(b, CONSUMERS, &[], consumer)? {
        s.consumers.insert(c.uuid.clone(), c);
    }
    let allocs =
        rows(b, &format!("SELECT consumer, rp_id, class, used FROM allocations ORDER BY {order}"), &[], |r| {
            Ok((r.text(0)?, r.int(1)? as u32, r.text(2)?, r.int(3)?))
        })?;
    for (consumer, rp, class, used) in allocs {
        let class = s.classes.intern(&class, created);
        if let Some(c) = s.consumers.get_mut(&consumer) {
            c.allocations.push(Allocation { rp, class, used });
        }
        s.add_usage(rp, class, used);
    }
    s.usage_changed.clear();
    Ok(s)
}

/// Puts a provider read from the store into its slot and the name maps
/// (its children are linked by the caller).
fn put_provider(s: &mut State, p: Provider) {
    let id = p.id as usize;
    if s.providers.len() <= id {
        s.providers.resize(id + 1, None);
    }
    s.by_uuid.insert(p.uuid.clone(), p.id);
    s.by_name.insert(p.name.clone(), p.id);
    if p.parent.is_some() {
        s.nested += 1;
    }
    s.providers[id] = Some(p);
}

/// Adds an inventory row to its provider, with the usage `used` held for
/// its class (a reloaded provider keeps the usage its consumers make).
fn put_inventory(s: &mut State, (rp, class, inv, c, u): InventoryRow, used: &HashMap<ClassId, i64>) {
    let class = s.classes.intern(&class, c);
    let used = used.get(&class).copied().unwrap_or(0);
    let p = s.provider_mut(rp);
    p.inventories.push(InventoryRecord { class, inv, used, created_at: c, updated_at: u });
    p.inventories.sort_by_key(|r| r.class);
}

fn put_aggregate(s: &mut State, rp: RpId, agg: &str, created: Ts) {
    let a = s.aggs.intern(agg, created);
    s.provider_mut(rp).aggregates.insert(a);
    s.agg_members.entry(a).or_default().insert(rp);
}

/// Takes a provider out of memory (maps, parent's children, aggregate
/// members), returning the usage its inventories held per class.
fn take_provider(s: &mut State, id: RpId) -> Option<(Provider, HashMap<ClassId, i64>)> {
    let old = s.providers.get_mut(id as usize)?.take()?;
    s.by_uuid.remove(&old.uuid);
    s.by_name.remove(&old.name);
    if let Some(parent) = old.parent {
        s.nested -= 1;
        if let Some(Some(p)) = s.providers.get_mut(parent as usize) {
            p.children.remove(&id);
        }
    }
    for a in &old.aggregates {
        if let Some(members) = s.agg_members.get_mut(a) {
            members.remove(&id);
        }
    }
    let used = old.inventories.iter().map(|r| (r.class, r.used)).collect();
    Some((old, used))
}

/// Re-reads the rows of `names` from `table` (resource classes or traits):
/// a name the table no longer holds is deleted.
fn reload_names(b: &mut dyn Backend, vocab: &mut Names, table: &str, names: &BTreeSet<String>) -> Result<()> {
    let sql = format!("SELECT name, created_at, updated_at FROM {table} WHERE name = $1");
    for name in names {
        match rows(b, &sql, &[Val::S(name)], named)?.pop() {
            Some((name, c, u)) => {
                let id = vocab.intern(&name, c);
                vocab.created_at[id as usize] = c;
                vocab.updated_at[id as usize] = u;
            }
            None => {
                if let Some(id) = vocab.id_of(name) {
                    vocab.kill(id);
                }
            }
        }
    }
    Ok(())
}

/// Re-reads from the store exactly the rows `changes` names (resource
/// classes, traits, providers, consumers with their allocations) and puts
/// them in place of memory's, keeping every derived index (names, trees,
/// aggregate members, usage) exact. Returns the providers whose rows
/// changed, and those whose usage alone changed (the fleet re-writes only
/// that of the latter). Called with the store at one consistent point: inside the
/// write lock, or one read-only snapshot.
pub(super) fn reload_changed(
    b: &mut dyn Backend,
    s: &mut State,
    changes: &ChangeSet,
) -> Result<(BTreeSet<RpId>, BTreeSet<RpId>)> {
    use Val::{I, S};
    let created = s.classes.created_at.first().copied().unwrap_or(0);
    reload_names(b, &mut s.classes, "resource_classes", &changes.classes)?;
    reload_names(b, &mut s.traits, "traits", &changes.traits)?;
    let mut changed = BTreeSet::new();
    let mut linked = vec![];
    for &id in &changes.providers {
        changed.insert(id);
        let (children, used) = match take_provider(s, id) {
            Some((old, used)) => (old.children, used),
            None => Default::default(),
        };
        let Some(mut p) = rows(b, &format!("{PROVIDERS} WHERE id = $1"), &[I(i64::from(id))], provider)?.pop() else {
            continue;
        };
        p.children = children;
        if let Some(parent) = p.parent {
            linked.push((parent, id));
        }
        put_provider(s, p);
        for row in rows(b, &format!("{INVENTORIES} WHERE rp_id = $1"), &[I(i64::from(id))], inventory)? {
            put_inventory(s, row, &used);
        }
        for (_, name) in
            rows(b, "SELECT rp_id, trait FROM provider_traits WHERE rp_id = $1", &[I(i64::from(id))], pair)?
        {
            let t = s.traits.intern(&name, created);
            s.provider_mut(id).traits.insert(t);
        }
        for (_, agg) in
            rows(b, "SELECT rp_id, aggregate FROM provider_aggregates WHERE rp_id = $1", &[I(i64::from(id))], pair)?
        {
            put_aggregate(s, id, &agg, created);
        }
    }
    for &id in changes.generations.difference(&changes.providers) {
        let row =
            rows(b, "SELECT generation, updated_at FROM resource_providers WHERE id = $1", &[I(i64::from(id))], |r| {
                Ok((r.int(0)?, r.int(1)?))
            })?;
        if let (Some((generation, updated_at)), Some(Some(p))) = (row.first(), s.providers.get_mut(id as usize)) {
            p.generation = *generation;
            p.stored_generation = Some(*generation);
            p.updated_at = *updated_at;
        }
    }
    // Linked after every provider is in place: a parent may be newer than
    // its child's row in this batch.
    for (parent, id) in linked {
        if let Some(Some(p)) = s.providers.get_mut(parent as usize) {
            p.children.insert(id);
        }
    }
    let order = b.order_column();
    for uuid in &changes.consumers {
        if let Some(old) = s.consumers.remove(uuid) {
            for a in &old.allocations {
                s.add_usage(a.rp, a.class, -a.used);
            }
        }
        let Some(mut c) = rows(b, &format!("{CONSUMERS} WHERE uuid = $1"), &[S(uuid)], consumer)?.pop() else {
            continue;
        };
        let lines = rows(
            b,
            &format!("SELECT rp_id, class, used FROM allocations WHERE consumer = $1 ORDER BY {order}"),
            &[S(uuid)],
            |r| Ok((r.int(0)? as u32, r.text(1)?, r.int(2)?)),
        )?;
        for (rp, class, used) in lines {
            let class = s.classes.intern(&class, created);
            c.allocations.push(Allocation { rp, class, used });
            s.add_usage(rp, class, used);
        }
        s.consumers.insert(c.uuid.clone(), c);
    }
    let usage = std::mem::take(&mut s.usage_changed).difference(&changed).copied().collect();
    Ok((changed, usage))
}
