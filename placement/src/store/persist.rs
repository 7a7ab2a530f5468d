//! Writing what one write changed ([`persist`]), inside the write's
//! transaction, with the generation checks in the database.

use super::{Backend, Val};
use crate::error::{Error, Result, codes};
use crate::model::{Dirty, State};

/// The store holds a newer generation than the one memory read.
fn stale(what: &str, uuid: &str) -> Error {
    Error::conflict(
        codes::CONCURRENT_UPDATE,
        format!("{what} {uuid}: another writer changed it first (generation conflict in the store); please retry"),
    )
}

/// Inserts `row` (its key first) when the store does not hold it yet
/// (`stored` None), else updates it where the stored generation is
/// `stored`: `Err(None)` when it is not (a newer writer got there first).
/// The update's placeholders take the key and the generation last, in
/// order of appearance, as SQLite numbers `$n`.
fn insert_or_update_checked(
    b: &mut dyn Backend,
    insert: &str,
    update: &str,
    row: &[Val<'_>],
    stored: Option<i64>,
) -> std::result::Result<(), Option<Error>> {
    let Some(stored) = stored else {
        return b.exec(insert, row).map(|_| ()).map_err(Some);
    };
    let mut args = row[1..].to_vec();
    args.extend([row[0], Val::I(stored)]);
    match b.exec(update, &args).map_err(Some)? {
        1 => Ok(()),
        _ => Err(None),
    }
}

/// Writes everything `state.dirty` names. A provider or consumer the store
/// already holds is updated only where its stored generation is the one
/// memory read (`stored_generation`); otherwise the write fails with
/// Placement's 409 `placement.concurrent_update` and is rolled back, so a
/// write built on a stale view never lands.
pub(super) fn persist(b: &mut dyn Backend, state: &State) -> Result<()> {
    use Val::{F, I, OptI, OptS, S};
    for d in &state.dirty {
        match d {
            Dirty::Class(id) => {
                let name = state.classes.name(*id);
                b.exec("DELETE FROM resource_classes WHERE name = $1", &[S(name)])?;
                if state.classes.live[*id as usize] {
                    b.exec(
                        "INSERT INTO resource_classes (name, created_at, updated_at) VALUES ($1, $2, $3)",
                        &[
                            S(name),
                            I(state.classes.created_at[*id as usize]),
                            I(state.classes.updated_at[*id as usize]),
                        ],
                    )?;
                }
            }
            Dirty::Trait(id) => {
                let name = state.traits.name(*id);
                b.exec("DELETE FROM traits WHERE name = $1", &[S(name)])?;
                if state.traits.live[*id as usize] {
                    b.exec(
                        "INSERT INTO traits (name, created_at, updated_at) VALUES ($1, $2, $3)",
                        &[S(name), I(state.traits.created_at[*id as usize]), I(state.traits.updated_at[*id as usize])],
                    )?;
                }
            }
            Dirty::Provider(id) => {
                let rid = i64::from(*id);
                b.exec("DELETE FROM inventories WHERE rp_id = $1", &[I(rid)])?;
                b.exec("DELETE FROM provider_traits WHERE rp_id = $1", &[I(rid)])?;
                b.exec("DELETE FROM provider_aggregates WHERE rp_id = $1", &[I(rid)])?;
                let Some(Some(p)) = state.providers.get(*id as usize) else {
                    b.exec("DELETE FROM resource_providers WHERE id = $1", &[I(rid)])?;
                    continue;
                };
                let row = [
                    I(rid),
                    S(&p.uuid),
                    S(&p.name),
                    I(p.generation),
                    OptI(p.parent.map(i64::from)),
                    I(i64::from(p.root)),
                    I(p.created_at),
                    I(p.updated_at),
                ];
                insert_or_update_checked(
                    b,
                    "INSERT INTO resource_providers (id, uuid, name, generation, parent_id, root_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    "UPDATE resource_providers SET uuid = $1, name = $2, generation = $3, parent_id = $4,
                       root_id = $5, created_at = $6, updated_at = $7
                     WHERE id = $8 AND generation = $9",
                    &row,
                    p.stored_generation,
                )
                .map_err(|e| e.unwrap_or_else(|| stale("resource provider", &p.uuid)))?;
                for r in &p.inventories {
                    let i = &r.inv;
                    b.exec(
                        "INSERT INTO inventories (rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        &[
                            I(rid),
                            S(state.class_name(r.class)),
                            I(i.total),
                            I(i.reserved),
                            I(i.min_unit),
                            I(i.max_unit),
                            I(i.step_size),
                            F(i.allocation_ratio),
                            I(r.created_at),
                            I(r.updated_at),
                        ],
                    )?;
                }
                for t in &p.traits {
                    b.exec(
                        "INSERT INTO provider_traits (rp_id, trait) VALUES ($1, $2)",
                        &[I(rid), S(state.traits.name(*t))],
                    )?;
                }
                for a in &p.aggregates {
                    b.exec(
                        "INSERT INTO provider_aggregates (rp_id, aggregate) VALUES ($1, $2)",
                        &[I(rid), S(state.aggs.name(*a))],
                    )?;
                }
            }
            Dirty::Generation(id) => {
                if state.dirty.contains(&Dirty::Provider(*id)) {
                    continue;
                }
                let Some(Some(p)) = state.providers.get(*id as usize) else { continue };
                let Some(stored) = p.stored_generation else {
                    return Err(Error::internal("a generation bump of a provider never stored"));
                };
                let n = b.exec(
                    "UPDATE resource_providers SET generation = $1, updated_at = $2 WHERE id = $3 AND generation = $4",
                    &[I(p.generation), I(p.updated_at), I(i64::from(*id)), I(stored)],
                )?;
                if n != 1 {
                    return Err(stale("resource provider", &p.uuid));
                }
            }
            Dirty::Consumer(uuid) => {
                b.exec("DELETE FROM allocations WHERE consumer = $1", &[S(uuid)])?;
                let Some(c) = state.consumers.get(uuid) else {
                    b.exec("DELETE FROM consumers WHERE uuid = $1", &[S(uuid)])?;
                    continue;
                };
                let row = [
                    S(&c.uuid),
                    S(&c.project),
                    S(&c.user),
                    I(c.generation),
                    OptS(c.consumer_type.as_deref()),
                    I(c.created_at),
                    I(c.updated_at),
                ];
                insert_or_update_checked(
                    b,
                    "INSERT INTO consumers (uuid, project, \"user\", generation, consumer_type, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    "UPDATE consumers SET project = $1, \"user\" = $2, generation = $3, consumer_type = $4,
                       created_at = $5, updated_at = $6
                     WHERE uuid = $7 AND generation = $8",
                    &row,
                    c.stored_generation,
                )
                .map_err(|e| e.unwrap_or_else(|| stale("consumer", &c.uuid)))?;
                for a in &c.allocations {
                    b.exec(
                        "INSERT INTO allocations (consumer, rp_id, class, used) VALUES ($1, $2, $3, $4)",
                        &[S(&c.uuid), I(i64::from(a.rp)), S(state.class_name(a.class)), I(a.used)],
                    )?;
                }
            }
        }
    }
    Ok(())
}
