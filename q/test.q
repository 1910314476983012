/ Runs where a licensed q exists (scripts/test.sh calls it when q and QHOME are present): the q layer end to end.
/ From the repository root:  KDBPROM_LIB=$PWD/target/debug/libkdbprom q q/test.q -q </dev/null
/ It also starts q/test_server.q (real IPC and HTTP, sampled through sd1: plain, -b, -u with a user file, -p -N),
/ q/test_batch.q (jobs that end by themselves and push as they exit) and q/test_timer.q (sampler "timer", with a
/ .z.ts assigned after init). Lines starting "report:" say what q did where its docs leave it open; not asserted.
/ An error stops q loading this file; q then reads stdin, and its end (.z.pc 0) fails the run.
guard:{if[0=x;-2"FAIL: q/test.q stopped before its end";exit 1]};
.z.pc:{[x]guard x};
fails:0;n:0;
check:{[what;ok]n::n+1;if[not 1b~ok;-2"FAIL: ",what;fails::fails+1]};
report:{-1"report: ",x};
err:{[f;x]@[f;x;{x}]};
/ the value of the first exposition line (of lines l) that starts with m, as a float; 0n when there is none
tv:{[l;m]"F"$last" "vs first l where l like m," *"};
val:{[m]tv["\n"vs .prom.text[];m]};
hv:{[h;m]tv["\n"vs h".prom.text[]";m]};
/ now in Unix seconds (a q timestamp counts nanoseconds from 2000.01.01)
unow:{(10957*86400)+1e-9*"j"$.z.p};
/ the lines of a file; () when there is none
lines:{@[read0;hsym`$x;()]};
/ q code as text: a line that may not parse fails its check instead of the whole file
run:{@[value;x;{"ERR ",x}]};

\l q/kdbprom.q

/ the library path: KDBPROM_LIB with or without .so, absolute, relative (made absolute), or a bare name (q's search)
lib:getenv`KDBPROM_LIB;
cwd:system"cd";
rel:$[lib like cwd,"/*";(1+count cwd)_lib;lib];
check["KDBPROM_LIB absolute, under the working directory (as scripts/test.sh sets it)";(lib like cwd,"/*")&"/"=first lib];
check["library bound from KDBPROM_LIB";.prom.lib~hsym`$lib];
check["absolute path kept";(hsym`$lib)~.prom.libpath lib];
check["trailing .so dropped";(hsym`$lib)~.prom.libpath lib,".so"];
check["relative path made absolute";(hsym`$lib)~.prom.libpath rel];
check["relative path with .so";(hsym`$lib)~.prom.libpath rel,".so"];
check["bare name left to q's search";`:libkdbprom_nowhere~.prom.libpath"libkdbprom_nowhere.so"];

/ before .prom.init nothing is wrapped; unwrap has nothing to do; rewrap says why
ph0:.z.ph;
check["loading wraps nothing";not any .prom.has each`.z.pg`.z.ps`.z.po`.z.exit`.z.ts];
check["unwrap before init";(`symbol$())~.prom.unwrap[]];
check["rewrap before init";"prom: not initialised: call .prom.init first"~err[.prom.rewrap;::]];

/ bad instrument and sampler values
tf:"/tmp/kdbprom-qtest.prom";
bad:{err[.prom.init;`job`textfile`instrument!(`qtest;tf;x)]};
check["instrument: unknown handler";"prom: config key instrument: unknown handler x"~bad`sync`x];
check["instrument: a mixed list";(bad(`sync;1b))like"prom: config key instrument: must be a boolean or a list of handler names*"];
check["instrument: a dictionary";(bad`sync`async!11b)like"prom: config key instrument: must be a boolean or a list of handler names*"];
check["sampler: sd1 is what init returns, not a config value";(err[.prom.init;`job`textfile`sampler!(`qtest;tf;"sd1")])like"prom: config key sampler: must be \"auto\" or \"timer\"*"];
check["a refused init wraps nothing";not .prom.has`.z.pg];

/ the user's handlers, of each form: a projection, a composition, a symbol naming a function
pgf:{[tag;x]value x}`mine;
.z.pg:pgf;
psf:('[{x};value]);
.z.ps:psf;
post:{[x]"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nposm"};
.z.pp:`post;

/ sampler "auto" (the default) in a process that does not listen: sampled at init, push, stop and exit; no timer
r:.prom.init`job`textfile`serve_metrics`interval_ms!(`qtest;tf;1b;60000);
check["init returns the job";`qtest~r`job];
check["every handler group by default";`sync`async`http`websocket`timer`conn~r`instrument];
check["not listening, no timer asked for: sampler none";`none~r`sampler];
check["no \\t started";0=system"t"];
check["no .z.ts defined (kdbprom defines none it did not ask a timer for)";not .prom.has`.z.ts];
check[".z.pg wrapped around the projection";(.z.pg~.prom.mine`pg)&pgf~.prom.orig`pg];
check[".z.ps wrapped around the composition";(.z.ps~.prom.mine`ps)&psf~.prom.orig`ps];
check[".z.pp wrapped around the symbol";(.z.pp~.prom.mine`pp)&`post~.prom.orig`pp];
check["never defined: .z.pm .z.ws .z.pw .z.bm";not any .prom.has each`.z.pm`.z.ws`.z.pw`.z.bm];
check[".z.exit wrapped";.z.exit~.prom.mine`exit];
check["not sampled periodically: kdbprom_sample_interval_seconds 0";0=val"kdbprom_sample_interval_seconds"];
check["sampled at init: kdbprom_last_sample_timestamp_seconds is now";60>abs unow[]-val"kdbprom_last_sample_timestamp_seconds"];
check["process metrics from that sample";0<val"kdb_memory_used_bytes"];
check["the process collector: resident memory from /proc";0<val"process_resident_memory_bytes"];
check["output queues sampled (nothing waiting here)";0=val"kdb_ipc_output_queue_bytes"];

/ .prom.collect: a dictionary, a number, a keyed table; a dropped series goes; a failing function is counted
.prom.gauge[`qt_subs;"Subscribers.";`table];
.prom.gauge[`qt_log;"Log bytes.";()];
.prom.gauge[`qt_lag;"Lag.";`table`host];
subs:`trade`quote!3 5;
.prom.collect[`qt_subs;{subs}];
.prom.collect[`qt_log;{4096}];
.prom.collect[`qt_lag;{([table:`trade`quote;host:`h1`h2]lag:0.5 1.5)}];
.prom.sample[];
check["collect: a dictionary";(3=val"qt_subs{table=\"trade\"}")&5=val"qt_subs{table=\"quote\"}"];
check["collect: a number";4096=val"qt_log"];
check["collect: a keyed table";1.5=val"qt_lag{table=\"quote\",host=\"h2\"}"];
subs:enlist[`trade]!enlist 4;
.prom.sample[];
check["collect: a series no longer returned is removed";(4=val"qt_subs{table=\"trade\"}")&null val"qt_subs{table=\"quote\"}"];
.prom.collect[`qt_log;{'"boom"}];
.prom.sample[];.prom.sample[];
check["collect: a failing function is counted and changes nothing";(2=val"kdbprom_collect_errors_total{collector=\"qt_log\"}")&4096=val"qt_log"];
check["collect: a non-function is refused";(err[.prom.collect[`qt_log];42])like"prom: collect qt_log: f must be a function"];
.prom.collect[`qt_log;::];
check["collect: removed";not`qt_log in key .prom.collectors];

/ requests through the wrappers
s0:val"kdb_requests_total{handler=\"sync\"}";
check["a sync call answered";2~.z.pg"1+1"];
check["a failing sync call re-signalled unchanged";"type"~err[.z.pg;"1+`a"]];
check["both counted";(s0+2)=val"kdb_requests_total{handler=\"sync\"}"];
check["the error counted";1=val"kdb_request_errors_total{handler=\"sync\"}"];
.z.ps"qtps:42";
check["async through the composition";42~qtps];
check["async counted";1=val"kdb_requests_total{handler=\"async\"}"];
check["POST through the symbol";(.z.pp("x body";()!()))like"*posm"];
post:{[x]"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnew!"};
check["the symbol is looked up at each call";(.z.pp("x body";()!()))like"*new!"];
check["POST counted";2=val"kdb_requests_total{handler=\"http_post\"}"];
check["/metrics served";(.z.ph("metrics";()!()))like"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4*kdb_requests_total*"];
check["/metrics?x=1 too";(.z.ph("/metrics?x=1";()!()))like"HTTP/1.1 200 OK*"];
check["/metrics not counted";0=val"kdb_requests_total{handler=\"http_get\"}"];
l0:val"kdbprom_last_sample_timestamp_seconds";
system"sleep 0.1";
p:.prom.push[];
check["push: the textfile written";1b~p[`textfile;`ok]];
check["push samples first";l0<val"kdbprom_last_sample_timestamp_seconds"];

/ the API; a general list of numbers and a timespan
.prom.counter[`qt_rows_total;"Rows.";`table];
.prom.histogram[`qt_load_seconds;"Load time.";();0.1 1 10f];
s:.prom.series[`qt_rows_total;enlist"trade"];
.prom.inc[s;5];
.prom.inc[s;1 2 3];
.prom.observe[`qt_load_seconds;(0.5;2;0D00:00:00.050000000)];
check["counter total";11=val"qt_rows_total{table=\"trade\"}"];
check["histogram count";3=val"qt_load_seconds_count"];
check["negative increment refused";"prom: counter qt_rows_total cannot decrease"~err[.prom.inc[s];-1]];

/ KX 1.x: the four updval glyphs, and the symbols; each call, then the value it left
.prom.newmetric[`qt_g;`gauge;();"gauge"];
.prom.newmetric[`qt_n_total;`counter;();"n"];
.prom.newmetric[`qt_h;`histogram;();"h"];
.prom.addmetric[`qt_g;();();0];
.prom.addmetric[`qt_n_total;();();0];
.prom.addmetric[`qt_h;();0.1 1f;()];
g1:run".prom.updval[`qt_g;:;5]";
check["updval : sets";((::)~g1)&5=val"qt_g"];
g2:run".prom.updval[`qt_g;+;2]";
check["updval + adds";((::)~g2)&7=val"qt_g"];
g3:run".prom.updval[`qt_g;-;1]";
check["updval - subtracts";((::)~g3)&6=val"qt_g"];
g4:run".prom.updval[`qt_h;,;0.5]";
check["updval , observes";((::)~g4)&(1=val"qt_h_count")&0.5=val"qt_h_sum"];
g5:run".prom.updval[`qt_n_total;+;3]";
check["updval + on a counter";((::)~g5)&3=val"qt_n_total"];
g6:.prom.updval[`qt_n_total;`inc;1];
check["updval `inc";((::)~g6)&4=val"qt_n_total"];
check["updval applied";6 4 1f~val each("qt_g";"qt_n_total";"qt_h_count")];
check["updval - on a counter refused";"ERR prom: counter qt_n_total does not support dec"~run".prom.updval[`qt_n_total;-;1]"];
check["updval of a lambda refused";"prom: updval: func must be one of : + - ,"~err[.prom.updval[`qt_n_total;{x}];1]];

/ load order: a handler assigned after init (tick's u.q assigns .z.pc) is wrapped again at the next sample
pclate:{[x]guard x;lastpc::x};
.z.pc:pclate;
check[".z.pc is the user's now";not .z.pc~.prom.mine`pc];
.prom.sample[];
check["wrapped again at the next sample";(.z.pc~.prom.mine`pc)&pclate~.prom.orig`pc];
/ a close is counted only for a handle whose opening was (.z.pc also runs for handles this process opened itself)
o0:val"kdb_connections_opened_total{kind=\"ipc\"}";
c0:val"kdb_connections_closed_total{kind=\"ipc\"}";
.z.pc 7i;
check["the new .z.pc runs";7i~lastpc];
check["a close whose opening was not counted is not counted";c0=val"kdb_connections_closed_total{kind=\"ipc\"}"];
.z.po 7i;
.z.pc 7i;
check["an opening counted";(o0+1)=val"kdb_connections_opened_total{kind=\"ipc\"}"];
check["and its close";(c0+1)=val"kdb_connections_closed_total{kind=\"ipc\"}"];
.z.pc 7i;
check["the same handle closing again is not counted";(c0+1)=val"kdb_connections_closed_total{kind=\"ipc\"}"];
check["nothing more to wrap";(`symbol$())~.prom.rewrap[]];
/ a handler that keeps ours and calls it (dotz style) is left alone: counted once
.z.pg:{[f;x]f x}.z.pg;
check["a handler calling ours is not wrapped again";(`symbol$())~.prom.rewrap[]];
s1:val"kdb_requests_total{handler=\"sync\"}";
.z.pg"1+1";
check["counted once";(s1+1)=val"kdb_requests_total{handler=\"sync\"}"];
.z.pg:.prom.mine`pg;

/ unwrap puts every handler back; twice does nothing
oldpg:.z.pg;
u:.prom.unwrap[];
check["unwrap names what it restored";all`.z.pg`.z.ps`.z.pp`.z.ph`.z.pc`.z.po`.z.exit in u];
check[".z.pg the projection again";pgf~.z.pg];
check[".z.ps the composition again";psf~.z.ps];
check[".z.pp the symbol again";`post~.z.pp];
check[".z.ph q's own";ph0~.z.ph];
check[".z.pc the late one";pclate~.z.pc];
check["undefined ones undefined again (or q's default where \\x cannot delete)";not any .prom.defined each`po`exit`ts];
report"\\x after unwrap: ",$[any .prom.has each`.z.po`.z.exit;"left kdbprom's stand-ins for .z.po/.z.exit";"deleted .z.po and .z.exit"];
check["unwrap twice";(`symbol$())~.prom.unwrap[]];
w:.prom.rewrap[];
check["rewrap wraps again";all`.z.pg`.z.ps`.z.pc in w];
check[".z.pg ours again";.z.pg~.prom.mine`pg];
/ a wrapper of an earlier generation (kept inside someone's handler across unwrap) passes calls through, uncounted
s3:val"kdb_requests_total{handler=\"sync\"}";
a:oldpg"1+1";
check["a stale wrapper still answers";2~a];
check["and counts nothing";s3=val"kdb_requests_total{handler=\"sync\"}"];

/ loading the script again keeps exactly one wrapper
\l q/kdbprom.q
check["loading again keeps the wrappers";.z.pg~.prom.mine`pg];
s2:val"kdb_requests_total{handler=\"sync\"}";
.z.pg"1+1";
check["one wrapper: counted once";(s2+1)=val"kdb_requests_total{handler=\"sync\"}"];

/ \e: under 1 or 2 the wrappers do not trap (the debugger stops in the user's code)
system"e 1";
.prom.rewrap[];
check["\\e 1: no trap";not .prom.trap];
system"e 0";
.prom.rewrap[];
check["\\e 0: trap";.prom.trap];

/ stop: nothing lost, the final push made; /metrics then answers 503; requests are still answered
st:.prom.stop[];
check["nothing lost";st[`events_recorded]=st[`events_applied]+st`events_dropped];
check["the final push written";1b~st[`pushed;`textfile;`ok]];
check["/metrics after stop: 503";(.z.ph("metrics";()!()))like"HTTP/1.1 503 Service Unavailable*prom: stopped*"];
check["a request after stop";2~.z.pg"1+1"];

/ init after stop, with one handler group: exactly one wrapper, around the user's handler
r:.prom.init`job`textfile`instrument`serve_metrics!(`qtest;tf;`sync;1b);
check["instrument `sync";(enlist`sync)~r`instrument];
check["one wrapper around the user's";(.z.pg~.prom.mine`pg)&pgf~.prom.orig`pg];
check["async no longer wrapped";psf~.z.ps];
.z.pg"1+1";
check["counted once after init again";1=val"kdb_requests_total{handler=\"sync\"}"];
.prom.stop[];
/ instrument 0b with serve_metrics: /metrics is served all the same
r:.prom.init`job`textfile`instrument`serve_metrics!(`qtest;tf;0b;1b);
check["instrument 0b: /metrics served";(.z.ph("metrics";()!()))like"HTTP/1.1 200 OK*"];
check["instrument 0b: .z.pg left alone";pgf~.z.pg];
.prom.stop[];
.prom.unwrap[];

/ sampler "timer" (opt-in): no timer and no .z.ts, so kdbprom starts \t interval_ms and defines the .z.ts that samples
r:.prom.init`job`textfile`sampler`interval_ms!(`qtest;tf;"timer";100);
check["sampler timer";`timer~r`sampler];
check["timer: kdbprom started \\t interval_ms";100=system"t"];
check["timer: .z.ts is kdbprom's";.z.ts~.prom.mine`ts];
check["timer: kdbprom_sample_interval_seconds 0.1";0.1=val"kdbprom_sample_interval_seconds"];
l0:val"kdbprom_last_sample_timestamp_seconds";
system"sleep 0.2";
.z.ts .z.p;
check["timer: kdbprom's tick samples";l0<val"kdbprom_last_sample_timestamp_seconds"];
check["timer: kdbprom's own tick not counted";0=val"kdb_requests_total{handler=\"timer\"}"];
/ a .z.ts assigned after init replaces kdbprom's: it runs, but nothing samples until .prom.rewrap[] (or a push)
tk:0;
tsf:{[x]tk::tk+1};
.z.ts:tsf;
l1:val"kdbprom_last_sample_timestamp_seconds";
system"sleep 0.2";
.z.ts .z.p;
check["a .z.ts assigned after init runs";1=tk];
check["and does not sample";l1=val"kdbprom_last_sample_timestamp_seconds"];
check["rewrap wraps it";(enlist`.z.ts)~.prom.rewrap[]];
check["around the user's";(.z.ts~.prom.mine`ts)&tsf~.prom.orig`ts];
system"sleep 0.2";
.z.ts .z.p;
check["the user's .z.ts runs through the wrapper";2=tk];
check["which samples again";l1<val"kdbprom_last_sample_timestamp_seconds"];
check["and counts the user's tick";1=val"kdb_requests_total{handler=\"timer\"}"];
.prom.stop[];
.prom.unwrap[];
check["unwrap gives .z.ts back to the user";tsf~.z.ts];
check["and stops the timer kdbprom started";0=system"t"];
/ a dormant .z.ts (defined, \t 0) is not started, even with sampler "timer"
.z.ts:{dormant::1b};
r:.prom.init`job`textfile`sampler!(`qtest;tf;"timer");
check["a dormant .z.ts is not started";0=system"t"];
check["and nothing samples periodically: kdbprom_sample_interval_seconds 0";0=val"kdbprom_sample_interval_seconds"];
system"t 100";
.prom.push[];
check["a \\t of the user's that runs: interval_ms (default 10 s) from the next sample";10=val"kdbprom_sample_interval_seconds"];
system"t 0";
.prom.stop[];
.prom.unwrap[];

/ servers (q/test_server.q), each listening, so sampled through sd1 every 200 ms. They define .z.pw (user u only),
/ so every connection and HTTP call goes as u:p. pids: the servers to end at the end.
port:20000+.z.i mod 20000;
pids:();
serve:{[a;f]system"q q/test_server.q ",a," -q </dev/null >",f," 2>&1 &"};
/ a server's handle, once its .prom.init has run; 0 when it does not answer within 10 s
connect:{[p]h:0;do[100;if[0=h;h:@[hopen;(`$"::",string[p],":u:p";1000);0];if[0=h;system"sleep 0.1"]]];
  if[h>0;do[100;if[1b~@[h;"@[value;`.prom.inited;0b]";0b];:h];system"sleep 0.1"]];
  h};
/ kdb_memory_used_bytes of server h, read 10 times 0.2 s apart
useds:{[h]{[h;x]system"sleep 0.2";hv[h;"kdb_memory_used_bytes"]}[h]each til 10};
said:{[f]sum lines[f]like"*cannot update q state*"};

/ plain: real IPC and HTTP, a refused login, closes, a .z.pc assigned after init
serve["-p ",string port;"/tmp/kdbprom-qserver.log"];
h:connect port;
if[not h>0;-2"FAIL: the server did not start (see /tmp/kdbprom-qserver.log)";exit 1];
pids,:h".z.i";
s0:hv[h;"kdb_requests_total{handler=\"sync\"}"];
check["remote sync call";2~h"1+1"];
check["remote sync error";"type"~@[h;"1+`a";{x}]];
rt:"\n"vs h".prom.text[]";
check["remote calls counted (with the one that read the count before)";(s0+3)=tv[rt;"kdb_requests_total{handler=\"sync\"}"]];
check["remote error counted";1=tv[rt;"kdb_request_errors_total{handler=\"sync\"}"]];
check["remote connection counted";1=tv[rt;"kdb_connections_opened_total{kind=\"ipc\"}"]];
check["listening: sd1 samples";`sd1~h".prom.settings`sampler"];
check["sampled every interval: kdbprom_sample_interval_seconds 0.2";0.2=tv[rt;"kdbprom_sample_interval_seconds"]];
l0:tv[rt;"kdbprom_last_sample_timestamp_seconds"];
us:useds h;
check["the sd1 sample moves kdb_memory_used_bytes (the server's heap changes on its timer)";1<count distinct us];
check["and kdbprom_last_sample_timestamp_seconds";l0<hv[h;"kdbprom_last_sample_timestamp_seconds"]];
check["nothing on stderr about q state (no -b, no -u)";0=said"/tmp/kdbprom-qserver.log"];
check["login refused by .z.pw";0~@[hopen;(`$"::",string[port],":bad:pw";1000);0]];
check["refused login counted";1=hv[h;"kdb_auth_failures_total"]];
o1:hv[h;"kdb_connections_opened_total{kind=\"ipc\"}"];
c1:hv[h;"kdb_connections_closed_total{kind=\"ipc\"}"];
h2:@[hopen;(`$"::",string[port],":u:p";1000);0];
check["a second connection";h2>0];
if[h2>0;hclose h2];
system"sleep 0.3";
rt:"\n"vs h".prom.text[]";
check["its opening counted";(o1+1)=tv[rt;"kdb_connections_opened_total{kind=\"ipc\"}"]];
check["and its close";(c1+1)=tv[rt;"kdb_connections_closed_total{kind=\"ipc\"}"]];
url:"http://u:p@127.0.0.1:",string port;
check["HTTP /metrics (as u:p)";(@[.Q.hg;`$":",url,"/metrics";{x}])like"*kdb_connections_opened_total*"];
@[.Q.hg;`$":",url,"/?1%2B1";{x}];
check["HTTP GET counted";1=hv[h;"kdb_requests_total{handler=\"http_get\"}"]];
an:@[.Q.hg;`$":http://127.0.0.1:",string[port],"/metrics";{x}];
report"N16: an anonymous GET /metrics where .z.pw admits only u was ",$[an like"*kdb_info*";"served";"refused"],"; kdb_auth_failures_total then ",string hv[h;"kdb_auth_failures_total"];
h".z.pc:{[x]lastpc::x}";
system"sleep 1";
check["the server wrapped its late .z.pc at a sample (the sd1 bookkeeping)";h".z.pc~.prom.mine`pc"];
h".prom.stop[];.prom.init @[cfg;`instrument;:;0b]";
check["HTTP /metrics without instrument";(@[.Q.hg;`$":",url,"/metrics";{x}])like"*kdb_info*"];
@[h;"exit 0";::];

/ -b (an HDB's read-only mode): q runs sd1 callbacks in our socket's handle context, where -b refuses global
/ writes. The sample only reads, so it still lands; the bookkeeping fails, and says so once on stderr.
pb:port+1;
serve["-p ",string[pb]," -b";"/tmp/kdbprom-qserver-b.log"];
hb:connect pb;
if[not hb>0;-2"FAIL: the -b server did not start (see /tmp/kdbprom-qserver-b.log)";exit 1];
pids,:hb".z.i";
check["-b: a client cannot write";"noupdate"~@[hb;"qtx:1";{x}]];
check["-b: sd1";`sd1~hb".prom.settings`sampler"];
l0:hv[hb;"kdbprom_last_sample_timestamp_seconds"];
us:useds hb;
check["-b: the sd1 sample still moves kdb_memory_used_bytes";1<count distinct us];
check["-b: and kdbprom_last_sample_timestamp_seconds";l0<hv[hb;"kdbprom_last_sample_timestamp_seconds"]];
check["-b: \"cannot update q state\" said once on stderr";1=said"/tmp/kdbprom-qserver-b.log"];
/ init from a client fails at its first q step under -b: the agent it started is stopped again (init is atomic)
hb".prom.stop[]";
check["-b: .prom.init from a client refused";"noupdate"~@[hb;".prom.init cfg";{x}]];
check["-b: and no agent left running";(@[hb;".prom.text[]";{x}])like"prom: stopped*"];
check["-b: so it can be retried (the same error, not a second agent)";"noupdate"~@[hb;".prom.init cfg";{x}]];
@[hb;"exit 0";::];

/ -u with a user file: logins are checked against the file (then .z.pw), and q refuses system commands outside
/ handle 0, where the sd1 bookkeeping (\e) runs; handlers assigned later are re-wrapped by .prom.rewrap[] in handle 0
`:/tmp/kdbprom-qusers.txt 0:enlist"u:p";
pu:port+2;
serve["-p ",string[pu]," -u /tmp/kdbprom-qusers.txt";"/tmp/kdbprom-qserver-u.log"];
hu:connect pu;
if[not hu>0;-2"FAIL: the -u server did not start, or refused u:p (see /tmp/kdbprom-qserver-u.log)";exit 1];
pids,:hu".z.i";
check["-u: a user not in the file is refused";0~@[hopen;(`$"::",string[pu],":v:p";1000);0]];
check["-u: sd1";`sd1~hu".prom.settings`sampler"];
l0:hv[hu;"kdbprom_last_sample_timestamp_seconds"];
us:useds hu;
check["-u: samples keep coming";l0<hv[hu;"kdbprom_last_sample_timestamp_seconds"]];
report"-u: kdb_memory_used_bytes ",$[1<count distinct us;"moves";"does not move"]," (.Q.w runs \\w in the sd1 handle context)";
report"-u: \"cannot update q state\" lines on stderr: ",string said"/tmp/kdbprom-qserver-u.log";
hu".z.pc:{[x]lastpc::x}";
system"sleep 0.6";
report"-u: a .z.pc a client assigned after init ",$[hu".z.pc~.prom.mine`pc";"was";"was not"]," re-wrapped from q's main loop";
hu"rewrapts:1b";
system"sleep 0.5";
check["-u: .prom.rewrap[] from the server's own .z.ts (handle 0) wraps it";hu".z.pc~.prom.mine`pc"];
check["-u: HTTP /metrics as a user of the file";(@[.Q.hg;`$":http://u:p@127.0.0.1:",string[pu],"/metrics";{x}])like"*kdb_info*"];

/ -p -N (multithreaded input mode): each client runs on its own thread, where globals are read-only; the sd1
/ wake-up only reads, so nothing kdbprom keeps in q changes on the main loop (.prom.nextsample stays as init left it)
pm:port+3;
serve["-p -",string pm;"/tmp/kdbprom-qserver-mt.log"];
hm:connect pm;
if[not hm>0;-2"FAIL: the -p -N server did not start (see /tmp/kdbprom-qserver-mt.log)";exit 1];
pids,:hm".z.i";
check["-p -N: a client cannot write";"noupdate"~@[hm;"qtx:1";{x}]];
check["-p -N: sd1";`sd1~hm".prom.settings`sampler"];
n0:hm".prom.nextsample";
l0:hv[hm;"kdbprom_last_sample_timestamp_seconds"];
us:useds hm;
check["-p -N: the sample still moves kdb_memory_used_bytes";1<count distinct us];
check["-p -N: and kdbprom_last_sample_timestamp_seconds";l0<hv[hm;"kdbprom_last_sample_timestamp_seconds"]];
check["-p -N: nothing written on the main loop (.prom.nextsample as init left it)";n0~hm".prom.nextsample"];
check["-p -N: no bookkeeping attempted, so nothing said on stderr";0=said"/tmp/kdbprom-qserver-mt.log"];

/ batch jobs (q/test_batch.q MODE): they do not listen, so nothing keeps q's loop alive and no timer is started.
/ Each records batch_rows_total 3, and batch_exit_total 1 from its .z.exit. batch gives (stdout; textfile; stderr).
batch:{[m]f:"/tmp/kdbprom-qbatch-",m;@[hdel;hsym`$f,".prom";::];
  o:system"timeout 30 q q/test_batch.q ",m," -q </dev/null 2>",f,".err; echo rc=$?";
  (o;lines f,".prom";lines f,".err")};
b:batch"exit";o:b 0;t:b 1;e:b 2;
check["batch: sampler none (it does not listen, asked for no timer)";any o like"batch sampler none"];
check["batch: no \\t started";any o like"batch timer 0"];
check["batch: no .z.ts defined";any o like"batch zts 0"];
check["batch: its .z.exit wrapped";any o like"batch zexit wrapper"];
check["batch: ran to its end, exit 0";(any o like"batch done")&"rc=0"~last o];
check["batch: its .z.exit ran";any o like"batch user exit 0"];
check["batch: the final push";3=tv[t;"batch_rows_total"]];
check["batch: with what its .z.exit recorded (run before the push)";1=tv[t;"batch_exit_total"]];
check["batch: not sampled periodically";0=tv[t;"kdbprom_sample_interval_seconds"]];
check["batch: sampled";0<tv[t;"kdbprom_last_sample_timestamp_seconds"]];
check["batch: pushed by the .z.exit wrapper, not the exit hook";not any e like"*final push at process exit*"];
/ .z.exit assigned after .prom.init replaces the wrapper: q runs it at exit, then the library's exit hook pushes
b:batch"late";o:b 0;t:b 1;e:b 2;
check["late .z.exit: the user's in place of the wrapper";any o like"batch zexit user"];
check["late .z.exit: it ran, exit 0";(any o like"batch user exit 0")&"rc=0"~last o];
check["late .z.exit: the exit hook pushed the final state";3=tv[t;"batch_rows_total"]];
check["late .z.exit: with what the user's .z.exit recorded";1=tv[t;"batch_exit_total"]];
check["late .z.exit: the hook says so once on stderr";1=sum e like"* kdbprom INFO final push at process exit*textfile ok*"];
/ the end of input: what q does then is not documented, so it is reported
b:batch"eoi";o:b 0;t:b 1;e:b 2;
report"end of input: q ",$["rc=0"~last o;"ended by itself";"did not end by itself (",last[o],")"],", ",$[any o like"batch user exit*";"ran";"did not run"]," .z.exit";
report"end of input: the final push ",$[3=tv[t;"batch_rows_total"];"was made";"is missing"],$[any e like"*final push at process exit*";", by the exit hook";""];

/ sampler "timer" in a job that assigns its own .z.ts after init (q/test_timer.q); its open stdin keeps it running
@[hdel;`:/tmp/kdbprom-qtimer.prom;::];
system"sleep 15 | q q/test_timer.q -q >/tmp/kdbprom-qtimer.log 2>&1 &";
waitfor:{[f;m]do[150;if[any lines[f]like m;:1b];system"sleep 0.1"];0b};
check["timer job: ended itself, and its .z.exit ran before the final push";waitfor["/tmp/kdbprom-qtimer.prom";"qtimer_exited 1"]];
o:lines"/tmp/kdbprom-qtimer.log";
t:lines"/tmp/kdbprom-qtimer.prom";
check["timer job: sampler timer";any o like"timer sampler timer"];
check["timer job: kdbprom started \\t 100";any o like"timer t 100"];
check["timer job: .z.ts was kdbprom's";any o like"timer wrapped 1"];
check["timer job: kdbprom_sample_interval_seconds 0.1";any o like"timer interval 0.1"];
check["timer job: its own .z.ts stopped the sampling";any o like"timer stale 1"];
check["timer job: .prom.rewrap[] from .z.ts wrapped it";any o like"timer rewrap .z.ts"];
check["timer job: said on stderr";any o like"* kdbprom INFO .z.ts changed after .prom.init*"];
check["timer job: sampling resumed";any o like"timer resumed 1"];
check["timer job: its ticks counted once wrapped";0<"F"$last" "vs first o where o like"timer counted *"];
check["timer job: the final push says interval 0.1";0.1=tv[t;"kdbprom_sample_interval_seconds"]];

if[count pids;@[system;"kill ",(" "sv string pids)," 2>/dev/null";::]];
-1 string[n-fails]," passed, ",string[fails]," failed";
exit "i"$fails>0
