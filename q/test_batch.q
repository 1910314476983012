/ The batch jobs q/test.q runs (q q/test_batch.q MODE -q </dev/null): they do not listen, so nothing keeps q's main
/ loop alive, and kdbprom starts no timer. Each records batch_rows_total 3, and its .z.exit records batch_exit_total 1;
/ MODE says when that .z.exit is assigned and how the job ends:
/   exit  before .prom.init (it is wrapped: the user's handler runs, then the final push), then exit 0
/   late  after .prom.init (it replaces the wrapper: q runs it, then the library's exit hook pushes), then exit 0
/   eoi   before .prom.init, and no exit: q ends at the end of its input (q/test.q reports what happened)
mode:$[count .z.x;first .z.x;"exit"];
ux:{[x]-1"batch user exit ",string x;.prom.inc[`batch_exit_total;1]};
\l q/kdbprom.q
if[not mode~"late";.z.exit:ux];
r:.prom.init`job`textfile!(`qbatch;"/tmp/kdbprom-qbatch-",mode,".prom");
if[mode~"late";.z.exit:ux];
.prom.counter[`batch_rows_total;"Rows.";()];
.prom.counter[`batch_exit_total;"Counted by the job's .z.exit.";()];
.prom.inc[`batch_rows_total;3];
-1"batch sampler ",string r`sampler;
-1"batch timer ",string system"t";
-1"batch zts ",string .prom.has`.z.ts;
-1"batch zexit ",$[.z.exit~.prom.mine`exit;"wrapper";"user"];
-1"batch done";
if[not mode~"eoi";exit 0];
