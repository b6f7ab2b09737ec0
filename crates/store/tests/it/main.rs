//! The store conformance suite: every story runs on SQLite (a fresh temp file each)
//! and on PostgreSQL (a fresh `CREATE DATABASE` each) when `TEST_DATABASE_URL` names
//! a server. Without it the PostgreSQL variants print `SKIPPED` and pass, unless `CI`
//! is set, where a skipped backend is a failure.
//!
//! [`stories!`] stamps each story once per backend, so `sqlite::x` and `postgres::x`
//! run the same body.

mod batch;
mod budget;
mod commit;
mod conversions;
mod cost_batches;
mod costs;
mod exceptions;
mod harness;
mod jobs;
mod metrics;
mod orders;
mod paging;
mod reconcile;
mod schedules;
mod shipments;
mod sqlite_only;
mod timeline;
mod tokens;

macro_rules! stories {
    ($($module:ident :: $story:ident,)*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() -> anyhow::Result<()> {
                    let db = crate::harness::TestDb::sqlite().await?;
                    crate::$module::$story(&db).await
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() -> anyhow::Result<()> {
                    let Some(db) = crate::harness::TestDb::postgres().await? else {
                        return Ok(());
                    };
                    crate::$module::$story(&db).await
                }
            )*
        }
    };
}

stories! {
    reconcile::copies_are_staged_in_bulk_the_last_copy_wins_and_pages_come_back_in_key_order,
    batch::a_burst_of_deliveries_is_stored_in_one_batch_with_an_outcome_each,
    batch::a_batch_with_one_failing_change_stores_none_of_it,
    batch::batches_committed_from_many_tasks_at_once_never_fail_with_busy,
    commit::a_committed_change_is_all_or_nothing,
    commit::a_change_records_the_order_its_lines_jobs_events_and_watermark,
    commit::planning_the_same_idempotency_key_twice_plans_one_job,
    commit::a_change_without_a_time_is_stamped_with_the_clock,
    commit::a_change_for_an_unregistered_connection_says_how_to_fix_it,
    commit::many_workers_committing_at_once_never_fail_with_busy,
    jobs::two_concurrent_claimers_never_get_the_same_job,
    jobs::an_expired_lease_makes_a_job_claimable_again_and_the_old_token_cannot_finish_it,
    jobs::a_retried_job_waits_for_its_next_run_and_keeps_its_payload,
    jobs::a_rate_limited_push_put_back_has_not_spent_an_attempt,
    jobs::a_job_whose_payload_cannot_be_read_is_finished_dead_and_the_rest_of_its_kind_still_run,
    jobs::jobs_are_claimed_oldest_first_by_kind_and_connection,
    jobs::a_job_that_gives_up_is_dead_with_its_error,
    jobs::runnable_jobs_are_counted_with_when_the_first_and_last_were_planned,
    jobs::a_claims_jobs_are_renewed_together_and_a_job_taken_over_is_no_longer_renewed,
    exceptions::a_second_open_of_the_same_exception_refreshes_it_and_after_closing_a_new_one_opens,
    exceptions::exceptions_filter_by_owner_state_and_kind,
    exceptions::an_exception_is_acknowledged_assigned_and_resolved_each_step_audited_and_on_the_timeline,
    exceptions::an_exception_closes_by_itself_when_its_condition_clears_even_acknowledged_and_the_audit_says_so,
    exceptions::an_ignored_exception_is_not_raised_again_on_its_record_but_a_resolved_one_is,
    exceptions::retrying_an_exception_re_arms_the_given_up_job_behind_it_once,
    exceptions::the_audit_trail_cannot_be_rewritten,
    tokens::a_token_is_found_by_its_hash_until_revoked_and_its_name_is_free_again,
    timeline::the_timeline_returns_events_in_order,
    timeline::an_orders_timeline_merges_the_events_of_its_shipments_by_time_with_their_tracking_numbers,
    timeline::watermarks_advance_per_connection,
    timeline::a_watermark_moves_only_from_what_its_writer_read_and_a_stale_writer_writes_nothing,
    timeline::of_writers_racing_from_one_watermark_exactly_one_moves_it,
    schedules::two_takers_racing_for_one_due_pass_get_it_once,
    schedules::a_pass_is_taken_only_when_due_or_forced_and_never_from_a_live_lease,
    schedules::an_expired_pass_lease_is_taken_over_and_the_old_token_cannot_finish_it,
    schedules::a_renewed_pass_lease_is_not_taken_over_and_a_lost_one_cannot_be_renewed,
    schedules::a_finished_pass_records_its_success_or_its_error,
    schedules::hastening_brings_a_pass_forward_but_never_back,
    schedules::releasing_a_workers_leases_gives_back_only_that_workers_jobs_and_passes,
    orders::orders_list_filter_and_count_by_state,
    orders::an_order_is_found_by_its_shipstation_order_key,
    shipments::a_shipment_seen_twice_is_one_record_with_the_latest_version_and_its_first_sighting,
    shipments::shipments_list_by_erp_order_and_by_shipstation_order,
    shipments::awaiting_scan_lists_live_unscanned_labels_not_voided_ones_fulfillments_or_scanned_ones,
    shipments::a_shipment_written_with_its_job_and_event_is_all_or_nothing,
    shipments::scan_checks_put_never_checked_labels_first_then_the_least_recently_checked_and_keep_the_rest_until_due,
    shipments::the_shipment_poll_can_find_something_only_with_an_order_open_in_shipstation_a_recent_leaver_or_a_voidable_label,
    costs::a_labels_cost_is_recorded_once_with_the_label_however_often_it_is_planned,
    costs::an_entry_planned_from_a_ledger_another_worker_has_since_written_is_refused_whole,
    costs::a_reversal_points_at_the_entry_it_reverses_and_one_of_an_unknown_entry_writes_nothing,
    costs::cost_entries_list_by_order_and_label_time_a_page_at_a_time,
    costs::nothing_changes_or_deletes_a_recorded_entry,
    conversions::an_entry_converts_once_with_every_field_and_until_then_it_waits,
    conversions::two_converters_racing_for_one_entry_record_one_conversion,
    conversions::a_conversion_of_an_unknown_or_different_entry_writes_nothing,
    conversions::nothing_changes_or_deletes_a_conversion,
    cost_batches::a_batch_is_planned_with_its_journal_entries_and_posting_job_and_its_entries_leave_the_unbatched,
    cost_batches::two_planners_racing_for_one_window_plan_it_once_and_the_loser_writes_nothing,
    cost_batches::a_batch_moves_only_from_the_state_its_writer_read_and_a_posted_one_never_changes,
    cost_batches::a_withdrawn_batch_frees_its_entries_for_the_next_revision,
    budget::the_rate_budget_grants_until_the_reserve_then_waits_for_the_reset,
    budget::concurrent_rate_takes_never_grant_more_than_remaining,
    budget::a_late_response_never_gives_back_requests_already_spent,
    budget::a_counted_budget_grants_its_limit_per_window_and_a_429_makes_everyone_wait,
    budget::concurrent_counted_takes_from_two_processes_never_grant_more_than_the_limit,
    metrics::a_commit_names_the_kinds_it_opened_and_closed_and_the_open_ones_are_counted_per_connection,
    metrics::job_stats_count_pending_and_running_jobs_with_the_earliest_due_time,
    paging::shipments_page_by_cursor_through_ties_without_skipping_or_repeating,
    paging::cost_entries_page_through_equal_label_times_and_filter_by_batch_and_conversion,
    paging::cost_batches_page_through_equal_windows_and_revisions_and_one_is_found_by_id,
    paging::reconcile_runs_page_newest_first_and_each_finding_names_the_exception_its_run_opened_or_refreshed,
}
