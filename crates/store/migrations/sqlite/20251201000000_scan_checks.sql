-- When the scan sweep last asked about a label awaiting its first carrier scan, how
-- many checks in a row found no physical scan, when it is due again (NULL: at once)
-- and the coarse v2 tracking_status last seen (unknown|in_transit|error|delivered).
-- Times are INTEGER epoch milliseconds.

ALTER TABLE shipments ADD COLUMN scan_checked_at INTEGER;
ALTER TABLE shipments ADD COLUMN scan_empty_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shipments ADD COLUMN scan_due_at INTEGER;
ALTER TABLE shipments ADD COLUMN scan_coarse_status TEXT;

-- Labels the sweep can check (live, mapped to an ERP order, with a tracking number,
-- no scan yet), least recently checked first (never checked first of all).
CREATE INDEX shipments_scans_due ON shipments (connection, scan_checked_at)
    WHERE kind = 'label' AND NOT voided AND first_scan_at IS NULL
      AND erp_id IS NOT NULL AND tracking_number IS NOT NULL;
