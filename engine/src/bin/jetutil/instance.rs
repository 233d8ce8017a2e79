//! Starting an instance from the command line's flags: its parameters, the check that its
//! database exists (unless the command creates one), and opening the table a command names.

use jetdb::{Env, ErrorKind, Instance, InstanceParams, JetError, Session, Table};

use crate::cli::{InstanceFiles, InstanceFlags, Target, TuningFlags};

/// The database file inside an instance directory.
pub(crate) const DATABASE_FILE: &str = "data.edb";

impl TuningFlags {
    /// The parameters of the instance in `dir`; `create` sets create_path_if_not_exist.
    pub(crate) fn params(&self, files: &InstanceFiles, create: bool) -> InstanceParams {
        let mut p = InstanceParams::in_directory(&files.dir);
        p.log_path = files.log_dir().to_path_buf();
        p.system_path = files.system_dir().to_path_buf();
        p.base_name = files.paths.base_name.clone();
        p.log_file_size = self.log_file_size.saturating_mul(1024);
        p.circular_logging = self.circular_log;
        p.recovery = !self.no_logging;
        p.cache_size = self.cache_mib.max(1) * 1024 * 1024;
        p.page_size = self.page_size;
        p.create_path_if_not_exist = create;
        p
    }
}

impl InstanceFlags {
    /// The parameters of the instance these flags describe; `create` as in `TuningFlags::params`.
    pub(crate) fn params(&self, create: bool) -> InstanceParams {
        self.tuning.params(&self.files, create)
    }

    /// Initialises the instance; without `create`, its database must exist.
    pub(crate) fn start(&self, env: &Env, create: bool) -> Result<Instance, JetError> {
        start(env, self.params(create), !create)
    }
}

/// Initialises an instance with `params`; with `must_exist`, its database must exist (so a
/// mistyped directory is reported, not made into a new instance).
pub(crate) fn start(
    env: &Env,
    params: InstanceParams,
    must_exist: bool,
) -> Result<Instance, JetError> {
    if must_exist {
        let exists = env.vfs.exists(&params.database_path).map_err(|err| {
            JetError::io(format!("look up {}", params.database_path.display()), &err)
        })?;
        if !exists {
            return Err(JetError::new(
                ErrorKind::FileNotFound,
                format!(
                    "{} does not exist (put and load create an instance)",
                    params.database_path.display()
                ),
            ));
        }
    }
    let instance = Instance::new(env.clone(), params);
    instance.init()?;
    Ok(instance)
}

impl Target {
    /// Initialises the instance and opens (or, with `create`, creates) the table.
    pub(crate) fn open(
        &self,
        env: &Env,
        create: bool,
    ) -> Result<(Instance, Session, Table), JetError> {
        let instance = self.instance.start(env, create)?;
        let mut session = instance.begin_session()?;
        let table = match session.open_table(&self.table) {
            Ok(table) => table,
            Err(err) if create && err.kind() == ErrorKind::ObjectNotFound => {
                session.create_table(&self.table)?
            }
            Err(err) => return Err(err),
        };
        Ok((instance, session, table))
    }
}
