"""The package's layout: every module path and public name of the flat package before it still
imports (README, notebooks, locustfiles and users' code use them), the layer contracts hold
(import-linter, as `make test` runs it), no function grows past the complexity limits, and
DESIGN.md's module table is the package as it is (`PYTHONPATH=. .venv/bin/python tests/test_layout.py --write`
rewrites it from the modules' docstrings)."""

import ast
import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

import kafkabench
from conftest import explain, run_child

ROOT = Path(__file__).resolve().parent.parent

#: Every public top-level name of every module of the flat package (kafkabench 0.1, commit
#: 681cde0). `clusterstate.JOIN_SLACK_S` is left out: the cluster-state sampler stopped being a
#: thread of the run's process (it runs in a sidecar) before the layout changed.
OLD_NAMES: dict[str, list[str]] = {
    'admin': ['NEW_TOPIC_GRACE_S', 'PartitionInfo', 'TIMEOUT_S', 'admin_client', 'create_topic', 'delete_topics', 'describe_topic', 'describe_topics', 'list_consumer_groups', 'list_topics'],
    'brokermetrics': ['BYTES_IN', 'BrokerMetrics', 'COLUMNS', 'DEFAULT_METRICS', 'MESSAGES_IN', 'SCRAPE_TIMEOUT_S', 'UNDER_REPLICATED', 'broker_metrics_urls', 'check_urls', 'format_labels', 'is_counter', 'parse_labels', 'parse_scrape', 'to_wide'],
    'capacity': ['BrokerNeed', 'CapacityInputs', 'CapacityPlan', 'NetworkNeed', 'PartitionThroughput', 'RULE_OF_THUMB_MB_S_PER_PARTITION', 'StorageNeed', 'brokers_needed', 'network_needed', 'partitions_needed', 'per_partition_throughput', 'plan', 'rule_of_thumb_partitions', 'sensitivity', 'storage_needed'],
    'cli': ['CONSUMER_PERFORMANCE_HEADER', 'DESCRIPTION', 'Handler', 'build_parser', 'consumer_performance_lines', 'main', 'producer_performance_line', 'read_properties'],
    'cluster': ['DEFAULT_NAME', 'JMX_RULES', 'LIBRDKAFKA_LOG', 'LOCK_FILE', 'LOCK_WAIT_S', 'LocalCluster', 'Node', 'NodeStatus', 'OFFSETS_TOPIC', 'REACHABLE_TIMEOUT_S', 'STARTUP_TIMEOUT_S', 'STATE_FILE', 'STOP_TIMEOUT_S', 'check_reachable', 'clusters_home', 'librdkafka_logger', 'resolve_bootstrap'],
    'clusterstate': ['CLUSTER_STATE_DTYPES', 'ClusterStateObserver', 'PER_SECOND_DTYPES', 'cluster_state_figures', 'cluster_state_frame', 'cluster_state_per_second'],
    'config': ['CONNECTION_PREFIXES', 'CONSUMER_DEFAULTS', 'ClientProfile', 'FrozenDict', 'PRESETS', 'PRODUCER_DEFAULTS', 'REDACTED', 'SERVER_ASSIGNORS', 'WORKLOADS_DIR', 'load_profile', 'packaged_file', 'packaged_files', 'parse_kv', 'read_yaml', 'redact', 'resolve_yaml', 'route_settings'],
    'consumer': ['BATCH', 'COMMIT_INTERVAL_S', 'COMMIT_MODES', 'CONSUME_TIMEOUT_S', 'ConsumerSpec', 'ConsumptionTrace', 'check_commit_mode', 'effective_commit_mode', 'run_consumer'],
    'contract': ['BEGIN', 'Column', 'END', 'FRAMES', 'FRAMES_WITH_INDEX', 'HISTOGRAMS', 'Histogram', 'KINDS', 'PERCENTILE_KEYS', 'SETTING_PREFIXES', 'SOURCES', 'SUMMARY', 'check_frame', 'check_summary', 'column_names', 'columns', 'dtypes', 'empty_frame', 'group_name', 'main', 'markdown', 'member_name', 'percentile_columns', 'producer_name', 'summary_column', 'summary_names', 'write_markdown'],
    'errors': ['ClusterError', 'ConfigError', 'InstallError', 'KafkabenchError', 'NoClusterError'],
    'experiments': ['ProfileSpec', 'REBALANCE_VARIANTS', 'WorkloadSpec', 'check_capacity_plan', 'ci_mode', 'commit_strategy_crashes', 'compare_strategies_live', 'consumer_balance', 'exactly_once_curve', 'group_ids', 'lag_status', 'live_summary', 'offline_shares', 'peak_rate', 'rate_latency_curve', 'rebalance_comparison', 'rebalance_profile', 'results_dir', 'run_options', 'run_watched', 'scaling_consumers', 'service_patterns', 'size'],
    'faults': ['ACTIONS', 'COLUMNS', 'COMMAND_TIMEOUT_S', 'CONTROLLER_TIMEOUT_S', 'Fault', 'FaultObserver', 'JOIN_TIMEOUT_S', 'KEYS', 'METADATA_TIMEOUT_S', 'QUORUM_STATE', 'TARGETS_HELP', 'Target', 'UNDO', 'active_controller', 'command_for', 'find_local_cluster', 'parse_faults', 'parse_target', 'run_command', 'start_node'],
    'hdrlog': ['INTERVAL_DIR', 'SUFFIX', 'read_interval_log', 'window_percentiles', 'write_interval_logs'],
    'install': ['AGENT_FAILED', 'AGENT_RETRY_S', 'AGENT_TIMEOUT_S', 'ARCHIVE_URL', 'JMX_AGENT_JAR', 'JMX_AGENT_VERSION', 'Java', 'KafkaDist', 'LOG4J_VERSION', 'MAVEN_TIMEOUT_S', 'MIN_JAVA', 'SCALA_VERSION', 'find_java', 'install_jmx_agent', 'install_kafka', 'java_major', 'kafkabench_home'],
    'lag': ['LAG_COLUMNS', 'LagSampler', 'LagTable', 'Observation', 'OldestReader', 'STATUSES', 'group_status', 'lag_frame', 'partition_status'],
    'loadshapes': ['DEFAULT_RUN_TIME_S', 'DEFAULT_SHAPE', 'DEFAULT_STEPS', 'SHAPES', 'options_tick', 'planned_users', 'shape_tick'],
    'locust_results': ['FAILURES_COLUMNS', 'HISTORY_COLUMNS', 'LOCUSTFILES', 'LocustFrames', 'LocustRun', 'PERCENTILE_COLUMNS', 'PROCESSING_TYPES', 'STARTUP_ALLOWANCE_S', 'STATS_COLUMNS', 'TIMESERIES_COLUMNS', 'WORKERS_COLUMNS', 'error_counts', 'load_csv', 'locust_rebalances', 'locust_summary', 'locust_timeseries', 'locustfile_path', 'processing_summary', 'read_failures', 'read_history', 'read_stats', 'read_workers', 'run_locust', 'to_run_result'],
    'locust_user': ['CONNECT_TIMEOUT_S', 'CSV_SETTLE_S', 'DEFAULT_PARTITIONS', 'DEFAULT_TOPIC', 'FLUSH_TIMEOUT_S', 'FULL_SPEED_BATCH', 'IDLE_S', 'KafkaClient', 'KafkaConsumerUser', 'KafkaDeliveryError', 'KafkaLoadShape', 'KafkaSettings', 'KafkaUser', 'LOCUST_CONSUMER_DEFAULTS', 'OrderEventUser', 'POLL_EVERY', 'POLL_INTERVAL_S', 'ProcessingError', 'STOP_CHECK_S', 'TASK_RUNS_MAX', 'TOPIC_TIMEOUT_S', 'class_processing', 'load_processing', 'parse_conf', 'settings_for'],
    'membership': ['ACTIONS', 'DRAIN_BASELINE_S', 'GroupSettings', 'MemberEvent', 'MembershipObserver', 'event_dict', 'event_figures', 'member_identity', 'membership_frame', 'ownership', 'parse_member_events', 'read_traces'],
    'metrics': ['Buckets', 'CLOSE_TIMEOUT_S', 'DEFAULT_CLUSTER_NAME', 'FOLD_AFTER_S', 'LAG_METRICS', 'LATENCY_BUCKETS_S', 'LOCUST_METRICS', 'LagCollector', 'LagExporter', 'LocustMetrics', 'MetricsEndpoint', 'RUN_METRICS', 'RelayCollector', 'RunMetrics', 'free_port', 'lag_families', 'metric_names', 'parse_metrics', 'sample_value', 'scrape', 'serve_lag'],
    'observe': ['ALERTS_FILE', 'BROKER_JOB', 'CLIENT_JOB', 'DASHBOARD_FILE', 'DEFAULT_LAG_THRESHOLD', 'DEFAULT_PORT', 'HTTP_TIMEOUT_S', 'INSTALL_HINT', 'JOBS', 'LAG_ALERT', 'ObserveState', 'READY_TIMEOUT_S', 'RETENTION', 'STATE_FILE', 'STOP_TIMEOUT_S', 'SYNTHETIC_SERIES', 'add_targets', 'alerts', 'metric_names_used', 'missing_reason', 'observe_down', 'observe_home', 'observe_status', 'observe_up', 'prometheus_binary', 'prometheus_config', 'promql_metric_names', 'promtool_binary', 'queries', 'query', 'remove_targets', 'render_rules', 'require_prometheus', 'target_health'],
    'observers': ['LagObserver', 'ProgressBar'],
    'offsets': ['PLAN_COLUMNS', 'ResetSpec', 'SHOW_COLUMNS', 'SPEC_KINDS', 'TIMEOUT_S', 'parse_datetime', 'parse_spec', 'parse_topics', 'plan_reset', 'replay', 'reset', 'seek_to_timestamp', 'show'],
    'orders': ['Event', 'Item', 'ORDER_EVENT_TYPES', 'ORDER_POOL_SIZE', 'ORDER_SOURCE', 'OrderEvent', 'SCHEMA_VERSION', 'order_messages'],
    'partitioning': ['BUILTIN_STRATEGIES', 'Consistent', 'ConsistentRandom', 'Fnv1a', 'Fnv1aRandom', 'Fnv1aRoundRobin', 'KEY_KINDS', 'Murmur2', 'Murmur2Random', 'PartitionAnalysis', 'Partitioner', 'Priority', 'Random', 'STRATEGIES', 'analyze', 'compare_strategies', 'crc32', 'fnv1a', 'get_strategy', 'java_murmur2', 'key_sample', 'keys_moved', 'murmur2'],
    'plan': ['BATCH_OVERHEAD_BYTES', 'CLIENT_MAX_MESSAGE_BYTES', 'LIBRDKAFKA_TXN_TIMEOUT_MS', 'RunPlan', 'UNBOUNDED_S', 'check_message_size', 'check_transaction_span', 'check_transactional', 'max_message_size', 'needs_topic_limits', 'plan_run', 'verify_id'],
    'plots': ['COLORS', 'DASHES', 'METRIC_NAMES', 'NUMBER_FORMAT', 'TEMPLATE', 'axis_title', 'capacity_sensitivity', 'client_and_broker', 'cluster_state_over_time', 'format_number', 'lag_over_time', 'latency_over_time', 'latency_spectrum', 'line_style', 'mark_faults', 'partition_heatmap', 'partition_share', 'predicted_vs_measured', 'processing_over_time', 'rate_vs_latency', 'rebalance_timeline', 'summary_table', 'throughput_over_time', 'throughput_vs', 'users_over_time'],
    'processing': ['Abort', 'Backoff', 'DEAD_LETTERS_MAX', 'DLQ_HEADERS', 'FILTERED', 'OK', 'OutputLatency', 'POISON', 'Processing', 'ProcessingObserver', 'RETRY_HEADERS', 'RETRY_MODES', 'SOURCE_HEADER', 'Stage', 'Stopped', 'TIME_DISTRIBUTIONS', 'TRANSIENT', 'TXN_TIMEOUT_S', 'dead_letters_frame', 'dlq_topic', 'load_processing_file', 'now_ms', 'output_counts', 'output_topic', 'processing_frame', 'processing_from_spec', 'read_records', 'retry_topic'],
    'producer': ['ACKED', 'CHECK_EVERY', 'COMMIT_ATTEMPTS', 'DeliveryLedger', 'FAILED', 'FLUSH_MARGIN_S', 'MAX_BURST', 'MAX_WAIT_S', 'MIN_WAIT_S', 'NO_OUTCOME', 'POLL_EVERY', 'ProducerSpec', 'RECORD_EVERY', 'TXN_TIMEOUT_S', 'VERIFY_HEADER', 'VERIFY_ID_BYTES', 'run_producer', 'verify_header'],
    'quickstart': ['GRID', 'WARMUP_RUN_S', 'WORKLOAD', 'run_quickstart'],
    'recovery': ['ACTIVE_BEFORE_S', 'COLUMNS', 'DISRUPTIVE_ACTIONS', 'PRE_RATE_SECONDS', 'RECOVERED_FRACTION', 'SUMMARY_KEYS', 'TICK_S', 'Window', 'empty_recovery', 'recovery_figures', 'recovery_summary'],
    'report': ['COMPARED_SETTINGS', 'Runs', 'differing_settings', 'load_runs', 'write_report'],
    'results': ['HEADLINE', 'REBALANCE_COLUMNS', 'RESULT_FILE', 'RunResult', 'SCHEMA_VERSION', 'TIMESERIES_COLUMNS', 'compare', 'empty_lag', 'empty_librdkafka', 'empty_rebalances', 'empty_timeseries', 'find_run', 'list_results', 'load', 'load_many', 'load_results', 'make_run_id', 'save'],
    'runner': ['RunFailed', 'STATS_INTERVAL_MS', 'consume_topic', 'run_workload', 'topic_max_message_bytes', 'trust_observers'],
    'scenarios': ['ACKS_ALL', 'BASE_EXPECT', 'DRAIN_TIMEOUT_S', 'HEALTHY_TIMEOUT_S', 'ISR_ERROR_CODES', 'MIN_SECONDS', 'ROW_COLUMNS', 'SCENARIOS', 'SIZES', 'Scenario', 'ScenarioResult', 'check_expectations', 'error_text', 'get_scenario', 'list_scenarios', 'run_in_child', 'run_scenario', 'run_scenarios', 'scenario_figures', 'scenario_row', 'wait_healthy'],
    'session': ['ASSIGN_TIMEOUT_S', 'AckTimeline', 'FINAL_REPORTS_TIMEOUT_S', 'JOIN_TIMEOUT_S', 'RunObserver', 'RunSession', 'STAGE_FINISHED', 'Tally'],
    'stats': ['HIGHEST_US', 'LOWEST_US', 'LatencyRecorder', 'PERCENTILES', 'PERCENTILE_LADDER', 'SIGNIFICANT_FIGURES', 'STATS_COLUMNS', 'SUMMARY_KEYS', 'SecondHistograms', 'StatsCollector', 'parse_statistics', 'scale_us', 'spectrum'],
    'summary': ['COUNT_COLUMNS', 'MAX_DELAY_P50_US', 'MAX_DELAY_P99_US', 'RATE_TOLERANCE', 'build_summary', 'cpu_figures', 'identity', 'judge_schedule', 'lag_figures', 'latency_figures', 'mark_completeness', 'rebalances_frame', 'session_result', 'throughput_figures', 'timeseries', 'transaction_figures'],
    'sweep': ['DEFAULT_METRICS', 'RUN_OPTIONS', 'SweepSpec', 'load_sweep', 'point_id', 'points', 'run_sweep', 'summarize', 'sweep_dir'],
    'units': ['parse_duration'],
    'verify': ['BATCH', 'COLUMNS', 'INTERRUPTED_TIMEOUT_S', 'Ledger', 'SEQ_VALUE_BYTES', 'VerifyObserver', 'VerifyReport', 'seq_value', 'verify_delivery'],
    'widgets': ['ACKS', 'BATCH_SIZES', 'COMPRESSION_TYPES', 'CapacityPlanner', 'DEFAULT_STRATEGIES', 'FIGURE_HEIGHT_PX', 'LINGER_MS', 'LagMonitor', 'MESSAGE_SIZES', 'PartitionExplorer', 'ProducerTuningPanel', 'ProfileSpec', 'RATES', 'SENSITIVITY_OUTPUTS', 'TUNING_COLUMNS', 'WorkloadSpec', 'capacity_planner', 'lag_monitor', 'partition_explorer', 'producer_tuning_panel'],
    'workers': ['Control', 'DEAD_GRACE_S', 'ErrorCounts', 'FLAG_POLL_S', 'MESSAGES_PER_ERROR', 'MODES', 'Report', 'SharedFlag', 'WORKER_GC_THRESHOLD', 'WorkerDied', 'WorkerPool', 'check_mode', 'cpu_seconds', 'fewer_gc_pauses', 'in_spawned_bootstrap'],
    'workload': ['DURATION_FIELDS', 'KEY_COUNT_MAX', 'KEY_DISTRIBUTIONS', 'KEY_SEQUENCE_MIN', 'MessageSize', 'PAYLOAD_KINDS', 'POOL_BYTES_MAX', 'UniformSize', 'WeightedSizes', 'Workload', 'effective_replication_factor', 'fault_dict', 'key_sequence', 'load_workload', 'message_size_from_spec', 'payload_pool'],
}


@pytest.mark.parametrize("module", sorted(set(OLD_NAMES) - {"locust_user"}))
def test_every_old_module_path_imports_with_its_public_names(module):
    old = importlib.import_module(f"kafkabench.{module}")
    missing = [name for name in OLD_NAMES[module] if not hasattr(old, name)]
    assert not missing, f"kafkabench.{module} lost {missing}"


def test_a_moved_module_is_the_same_object_under_both_paths():
    for old, new in kafkabench._MOVED.items():
        if old == "locust_user":  # importing locust monkey-patches this process: see below
            continue
        assert importlib.import_module(f"kafkabench.{old}") is importlib.import_module(new), old
    import kafkabench.run.session as session
    from kafkabench.session import RunObserver

    assert RunObserver is session.RunObserver
    assert session.__spec__.name == "kafkabench.run.session"  # its own spec, not the alias's


def test_the_locust_user_module_imports_with_its_public_names():
    # A child process: importing locust monkey-patches this one (see pyproject's addopts).
    names = OLD_NAMES["locust_user"]
    code = ("import kafkabench.locust_user as m, sys\n"
            f"missing = [n for n in {names!r} if not hasattr(m, n)]\n"
            "print(missing)\nsys.exit(1 if missing else 0)\n")
    proc = run_child([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == 0, explain(proc)


def test_the_layer_contracts_hold():
    proc = run_child([str(Path(sys.executable).parent / "lint-imports")], timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "0 broken" in proc.stdout, explain(proc)


#: Cyclomatic complexity limits (radon's count): the hot loops' packages are composed of parts,
#: so no function there branches past 15; nothing anywhere past 20.
COMPLEXITY_LIMIT = 20
HOT_LOOP_LIMIT = 15
HOT_LOOP_PACKAGES = ("engine", "run")


def _functions(blocks) -> list:
    from radon.visitors import Class

    out = []
    for block in blocks:
        if isinstance(block, Class):
            out += _functions(block.methods) + _functions(block.inner_classes)
        else:
            out.append(block)
    return out


def test_no_function_is_more_complex_than_its_package_allows():
    from radon.complexity import cc_visit

    over = []
    for path in sorted((ROOT / "kafkabench").rglob("*.py")):
        rel = path.relative_to(ROOT / "kafkabench")
        limit = HOT_LOOP_LIMIT if rel.parts[0] in HOT_LOOP_PACKAGES else COMPLEXITY_LIMIT
        over += [f"{rel}:{f.lineno} {f.fullname} = {f.complexity} > {limit}"
                 for f in _functions(cc_visit(path.read_text())) if f.complexity > limit]
    assert not over, "split these into parts (shared/STYLE.md):\n" + "\n".join(over)


MODULES_BEGIN, MODULES_END = "<!-- modules:begin -->", "<!-- modules:end -->"


def _summary_line(doc: str | None) -> str:
    """A module docstring's first paragraph, cut at its first sentence if long."""
    para = (doc or "").strip().split("\n\n")[0].replace("\n", " ")
    if len(para) > 240:
        m = re.match(r"(.+?\.)(\s|$)", para)
        para = m.group(1) if m and len(m.group(1)) <= 240 else para[:237].rsplit(" ", 1)[0] + "..."
    return re.sub(r":$", ".", para).replace("|", "\\|")


def render_module_table() -> str:
    """Every module of the package, layer by layer (top first, as pyproject's contract lists them)."""
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    root = ROOT / "kafkabench"
    out = [MODULES_BEGIN, "Generated by `PYTHONPATH=. .venv/bin/python tests/test_layout.py --write` from the modules' docstrings."]
    for i, layer in enumerate(layers):
        packages = [p.strip().removeprefix("kafkabench.") for p in layer.split("|")]
        out += [f"\n#### Layer {len(layers) - i}: " + ", ".join(f"`{p}`" for p in packages) + "\n",
                "| module | what it owns |", "| --- | --- |"]
        for package in packages:
            folder = root / package.replace(".", "/")
            files = sorted(folder.glob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
            for f in files:
                if f.name == "__main__.py":
                    continue
                name = f"{package}/" if f.name == "__init__.py" and len(files) > 1 else str(f.relative_to(root))
                out.append(f"| `{name}` | {_summary_line(ast.get_docstring(ast.parse(f.read_text())))} |")
    return "\n".join(out + [MODULES_END])


def _design_table() -> str:
    text = (ROOT / "DESIGN.md").read_text()
    return text[text.index(MODULES_BEGIN):text.index(MODULES_END) + len(MODULES_END)]


def test_design_lists_every_module_as_it_is_now():
    assert _design_table() == render_module_table(), "run `PYTHONPATH=. .venv/bin/python tests/test_layout.py --write`"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        design = ROOT / "DESIGN.md"
        design.write_text(design.read_text().replace(_design_table(), render_module_table()))
