/*
 * namespace.h -- keeps the library's internal symbols out of its users'
 * namespace.  liblayered.a is a static library: every non-static function
 * of the core ends up in the program that links it, so each internal name
 * is mapped to one with the reserved "__layered_" prefix.  Included first
 * by every internal header; the public API (layered.h) is "layered_*".
 */
#ifndef LAYERED_NAMESPACE_H
#define LAYERED_NAMESPACE_H

#define batch_free __layered_batch_free
#define batch_journal_close __layered_batch_journal_close
#define batch_journal_open __layered_batch_journal_open
#define batch_retire __layered_batch_retire
#define conn_lock __layered_conn_lock
#define conn_unlock __layered_conn_unlock
#define crc32c __layered_crc32c
#define crc32c_portable __layered_crc32c_portable
#define ckpt_database_size __layered_ckpt_database_size
#define ckpt_publish_size __layered_ckpt_publish_size
#define ckpt_stable_bytes __layered_ckpt_stable_bytes
#define cursor_close __layered_cursor_close
#define dh_close_all __layered_dh_close_all
#define dh_collect __layered_dh_collect
#define dh_find __layered_dh_find
#define dh_get __layered_dh_get
#define dh_get_locked __layered_dh_get_locked
#define dh_get_schema_held __layered_dh_get_schema_held
#define dh_name __layered_dh_name
#define dh_lock_exclusive __layered_dh_lock_exclusive
#define dh_unlock_exclusive __layered_dh_unlock_exclusive
#define dh_release __layered_dh_release
#define dh_remove __layered_dh_remove
#define dh_rwlock_init __layered_dh_rwlock_init
#define dh_rwlock_read_lock __layered_dh_rwlock_read_lock
#define dh_rwlock_read_unlock __layered_dh_rwlock_read_unlock
#define dh_rwlock_try_write_lock __layered_dh_rwlock_try_write_lock
#define dh_rwlock_write_unlock __layered_dh_rwlock_write_unlock
#define dh_sweep __layered_dh_sweep
#define dh_table_create __layered_dh_table_create
#define dh_table_destroy __layered_dh_table_destroy
#define dh_unlock_release __layered_dh_unlock_release
#define drain_queue_claim __layered_drain_queue_claim
#define drain_queue_release __layered_drain_queue_release
#define fork_handlers_init __layered_fork_handlers_init
#define fp_destroy __layered_fp_destroy
#define fp_hit_slow __layered_fp_hit_slow
#define fp_init __layered_fp_init
#define fp_release_all __layered_fp_release_all
#define fp_set __layered_fp_set
#define fp_set_list __layered_fp_set_list
#define fs_all_zero __layered_fs_all_zero
#define fs_append __layered_fs_append
#define fs_arena_destroy __layered_fs_arena_destroy
#define fs_arena_init __layered_fs_arena_init
#define fs_batch_apply __layered_fs_batch_apply
#define fs_clear __layered_fs_clear
#define fs_close __layered_fs_close
#define fs_compact __layered_fs_compact
#define fs_copy __layered_fs_copy
#define fs_corrupt __layered_fs_corrupt
#define fs_datasync __layered_fs_datasync
#define fs_del __layered_fs_del
#define fs_empty __layered_fs_empty
#define fs_file_hdr_encode __layered_fs_file_hdr_encode
#define fs_flush __layered_fs_flush
#define fs_get_info __layered_fs_get_info
#define fs_header_check __layered_fs_header_check
#define fs_idx_find __layered_fs_idx_find
#define fs_idx_link __layered_fs_idx_link
#define fs_idx_remove __layered_fs_idx_remove
#define fs_idx_reset __layered_fs_idx_reset
#define fs_idx_search __layered_fs_idx_search
#define fs_idx_set __layered_fs_idx_set
#define fs_load __layered_fs_load
#define fs_lsn_raise __layered_fs_lsn_raise
#define fs_mark_synced __layered_fs_mark_synced
#define fs_message __layered_fs_message
#define fs_node_alloc __layered_fs_node_alloc
#define fs_node_free __layered_fs_node_free
#define fs_open __layered_fs_open
#define fs_pos_free __layered_fs_pos_free
#define fs_preadv_full __layered_fs_preadv_full
#define fs_put __layered_fs_put
#define fs_read_value __layered_fs_read_value
#define fs_rec_check __layered_fs_rec_check
#define fs_rec_hdr_decode __layered_fs_rec_hdr_decode
#define fs_rec_hdr_encode __layered_fs_rec_hdr_encode
#define fs_record_decode __layered_fs_record_decode
#define fs_seek __layered_fs_seek
#define fs_seq_add __layered_fs_seq_add
#define fs_seq_flush __layered_fs_seq_flush
#define fs_sync __layered_fs_sync
#define fs_sync_gen __layered_fs_sync_gen
#define fs_write_at_end __layered_fs_write_at_end
#define fs_write_header __layered_fs_write_header
#define lifecycle_drop_check __layered_lifecycle_drop_check
#define lifecycle_recover __layered_lifecycle_recover
#define lifecycle_start __layered_lifecycle_start
#define lifecycle_stop __layered_lifecycle_stop
#define lock_order_acquire __layered_lock_order_acquire
#define lock_order_release __layered_lock_order_release
#define meta_close __layered_meta_close
#define meta_load __layered_meta_load
#define meta_log __layered_meta_log
#define meta_snapshot __layered_meta_snapshot
#define os_default __layered_os_default
#define os_dir_fsync __layered_os_dir_fsync
#define os_now_ns __layered_os_now_ns
#define os_parent_fsync __layered_os_parent_fsync
#define tbl_cmp __layered_tbl_cmp
#define tbl_create_file __layered_tbl_create_file
#define tbl_find __layered_tbl_find
#define tbl_free __layered_tbl_free
#define tbl_insert __layered_tbl_insert
#define tbl_name_valid __layered_tbl_name_valid
#define tbl_unlink_files __layered_tbl_unlink_files
#define tbl_uri_parse __layered_tbl_uri_parse
#define layered_msg __layered_layered_msg
#define layered_panic __layered_layered_panic
#define layered_rcu_enter __layered_layered_rcu_enter

#endif /* LAYERED_NAMESPACE_H */
