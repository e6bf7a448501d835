//! Arbitrary bytes as a reviewed config: the loader must never panic, and a
//! config it accepts must come with no errors (and round-trip its catalog).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = airlock_policy::load_config_str(text);
    if let Some(cfg) = &loaded.config {
        assert!(!loaded.report.has_errors());
        for mode in [airlock_policy::catalog::AliasMode::Canonical, airlock_policy::catalog::AliasMode::Both] {
            let catalog = airlock_policy::catalog::Catalog::new(cfg, mode);
            for tool in catalog.tools() {
                assert!(catalog.resolve(&tool.name).is_some());
            }
        }
        for cap in &cfg.capabilities {
            for engine in [airlock_policy::config::Engine::Postgres, airlock_policy::config::Engine::Mysql, airlock_policy::config::Engine::Sqlite] {
                let _ = airlock_policy::statement::select_row(engine, cap, true);
            }
        }
    }
});
