"""The points ledger: earning from events, rewards, expiry, and its rebuild from the log."""
