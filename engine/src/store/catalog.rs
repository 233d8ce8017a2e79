//! The catalog: which tables the database holds and where their trees are rooted.
//!
//! It is itself a B+tree, rooted at the fixed page 2 (ESE keeps its catalog in `MSysObjects`):
//! the key is the table's name, the value its root page number (u32, little-endian).

use std::collections::BTreeMap;

use crate::base::error::{Result, bail};
use crate::store::btree;
use crate::store::header::CATALOG_ROOT;
use crate::store::node::{Value, ValueRef};
use crate::store::page::Pgno;
use crate::store::pager::Pager;

/// Reads every table and its root page.
pub(crate) fn load(pager: &mut Pager) -> Result<BTreeMap<String, Pgno>> {
    let mut tables = BTreeMap::new();
    let mut entry = btree::edge(pager, CATALOG_ROOT, true)?;
    while let Some((current, position)) = entry {
        let name = String::from_utf8(current.key.clone());
        let root = match &current.value {
            Value::Inline(bytes) if bytes.len() == 4 => {
                Some(u32::from_le_bytes(bytes[..].try_into().expect("4 bytes")))
            }
            _ => None,
        };
        match (name, root) {
            (Ok(name), Some(root)) if root > CATALOG_ROOT && root < pager.header().page_count => {
                tables.insert(name, root);
            }
            _ => bail!(
                CatalogCorrupted,
                "{}: catalog entry {:?} is not a table name and root page",
                pager.path().display(),
                String::from_utf8_lossy(&current.key)
            ),
        }
        entry = btree::step(pager, position, &current.key, true)?;
    }
    Ok(tables)
}

/// Records table `name` rooted at `root`.
pub(crate) fn insert(pager: &mut Pager, name: &str, root: Pgno) -> Result<()> {
    let old = btree::insert(
        pager,
        CATALOG_ROOT,
        name.as_bytes(),
        ValueRef::Inline(&root.to_le_bytes()),
    )?;
    if old.is_some() {
        bail!(
            CatalogCorrupted,
            "{}: the catalog held table {name:?} unseen",
            pager.path().display()
        );
    }
    Ok(())
}

/// Forgets table `name`.
pub(crate) fn remove(pager: &mut Pager, name: &str) -> Result<()> {
    if btree::delete(pager, CATALOG_ROOT, name.as_bytes())?.is_none() {
        bail!(
            CatalogCorrupted,
            "{}: the catalog lost table {name:?}",
            pager.path().display()
        );
    }
    Ok(())
}
