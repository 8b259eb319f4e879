"""An ACR-compatible mock recorder: seeded call schedule, callgen audio on replay, fault injection (`ccas avaya-mock`)."""
