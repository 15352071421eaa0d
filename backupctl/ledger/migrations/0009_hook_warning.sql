-- What an app's `after` hook said when it failed (backupctl.hooks).
--
-- hook_warning: the failure of the `after` hook of this backup's last attempt
-- ("after hook exited with status 1: ..."), redacted; NULL when it ran fine or the
-- app has none. It never changes the backup's status: a succeeded backup stays
-- succeeded (check is WARNING for its night), a failed one failed.

ALTER TABLE backups ADD COLUMN hook_warning text;
