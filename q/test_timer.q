/ The timer job q/test.q runs (sleep 15 | q q/test_timer.q -q): it does not listen and asks for sampler "timer",
/ so kdbprom starts \t and samples from its .z.ts wrapper. The job then assigns its own .z.ts, which replaces the
/ wrapper: nothing samples until .prom.rewrap[] (run here from that .z.ts, in handle 0) wraps it again. The open
/ stdin keeps q's loop running; the job ends itself from .z.ts, and its .z.exit (assigned before .prom.init, so
/ wrapped) sets qtimer_exited before the final push.
\l q/kdbprom.q
tv:{[m]l:"\n"vs .prom.text[];"F"$last" "vs first l where l like m," *"};
.z.exit:{[x].prom.set[`qtimer_exited;1]};
r:.prom.init`job`textfile`sampler`interval_ms!(`qtimer;"/tmp/kdbprom-qtimer.prom";"timer";100);
.prom.gauge[`qtimer_exited;"Set by the job's .z.exit.";()];
-1"timer sampler ",string r`sampler;
-1"timer t ",string system"t";
-1"timer wrapped ",string .z.ts~.prom.mine`ts;
-1"timer interval ",string tv"kdbprom_sample_interval_seconds";
l0:tv"kdbprom_last_sample_timestamp_seconds";
l5:0n;
tk:0;
.z.ts:{[x]tk::tk+1;
  if[tk=5;-1"timer stale ",string l0=tv"kdbprom_last_sample_timestamp_seconds";-1"timer rewrap ",raze string .prom.rewrap[];l5::tv"kdbprom_last_sample_timestamp_seconds"];
  if[tk=15;-1"timer resumed ",string l5<tv"kdbprom_last_sample_timestamp_seconds";-1"timer counted ",string tv"kdb_requests_total{handler=\"timer\"}";exit 0]};
