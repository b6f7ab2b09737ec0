-- A claim's jobs share its lease token: renewing them while their step runs finds
-- them by it (only jobs being worked on carry one).
CREATE INDEX jobs_by_lease_token ON jobs (lease_token) WHERE lease_token IS NOT NULL;
