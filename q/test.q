/ Runs where a licensed q exists (scripts/test.sh calls it when q and QHOME are present): the q layer end to end.
/ From the repository root:  KDBPROM_LIB=$PWD/target/debug/libkdbprom q q/test.q -q </dev/null
/ It also starts q/test_server.q (real IPC and HTTP) and q/test_batch.q (a job that must end by itself).
/ An error stops q loading this file; q then reads stdin, and its end (.z.pc 0) fails the run.
guard:{if[0=x;-2"FAIL: q/test.q stopped before its end";exit 1]};
.z.pc:{[x]guard x};
fails:0;n:0;
check:{[what;ok]n::n+1;if[not 1b~ok;-2"FAIL: ",what;fails::fails+1]};
err:{[f;x]@[f;x;{x}]};
/ the value of the first exposition line that starts with m, as a float
val:{[m]l:"\n"vs .prom.text[];"F"$last" "vs first l where l like m," *"};
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

/ bad instrument values
tf:"/tmp/kdbprom-qtest.prom";
bad:{err[.prom.init;`job`textfile`instrument!(`qtest;tf;x)]};
check["instrument: unknown handler";"prom: config key instrument: unknown handler x"~bad`sync`x];
check["instrument: a mixed list";(bad(`sync;1b))like"prom: config key instrument: must be a boolean or a list of handler names*"];
check["instrument: a dictionary";(bad`sync`async!11b)like"prom: config key instrument: must be a boolean or a list of handler names*"];
check["a refused init wraps nothing";not .prom.has`.z.pg];

/ the user's handlers, of each form: a projection, a composition, a symbol naming a function
pgf:{[tag;x]value x}`mine;
.z.pg:pgf;
psf:('[{x};value]);
.z.ps:psf;
post:{[x]"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nposm"};
.z.pp:`post;

r:.prom.init`job`textfile`serve_metrics`interval_ms!(`qtest;tf;1b;60000);
check["init returns the job";`qtest~r`job];
check["every handler group by default";`sync`async`http`websocket`timer`conn~r`instrument];
check["not listening: the .z.ts wrapper samples";`timer~r`sampler];
check[".z.pg wrapped around the projection";(.z.pg~.prom.mine`pg)&pgf~.prom.orig`pg];
check[".z.ps wrapped around the composition";psf~.prom.orig`ps];
check[".z.pp wrapped around the symbol";`post~.prom.orig`pp];
check["never defined: .z.pm .z.ws .z.pw .z.bm";not any .prom.has each`.z.pm`.z.ws`.z.pw`.z.bm];
check[".z.exit wrapped";.prom.has`.z.exit];
check["no timer and no .z.ts: kdbprom started \\t";60000=system"t"];

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
.z.ts .z.p;
check["kdbprom's own tick not counted";0=val"kdb_requests_total{handler=\"timer\"}"];
check["push";`textfile in key .prom.push[]];

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

/ KX 1.x: the four updval glyphs, and the symbols
.prom.newmetric[`qt_g;`gauge;();"gauge"];
.prom.newmetric[`qt_n_total;`counter;();"n"];
.prom.newmetric[`qt_h;`histogram;();"h"];
.prom.addmetric[`qt_g;();();0];
.prom.addmetric[`qt_n_total;();();0];
.prom.addmetric[`qt_h;();0.1 1f;()];
check["updval :";(::)~run".prom.updval[`qt_g;:;5]"];
check["updval +";(::)~run".prom.updval[`qt_g;+;2]"];
check["updval -";(::)~run".prom.updval[`qt_g;-;1]"];
check["updval ,";(::)~run".prom.updval[`qt_h;,;0.5]"];
check["updval + on a counter";(::)~run".prom.updval[`qt_n_total;+;3]"];
check["updval `inc";(::)~.prom.updval[`qt_n_total;`inc;1]];
check["updval applied";6 4 1f~val each("qt_g";"qt_n_total";"qt_h_count")];
check["updval - on a counter refused";"ERR prom: counter qt_n_total does not support dec"~run".prom.updval[`qt_n_total;-;1]"];
check["updval of a lambda refused";"prom: updval: func must be one of : + - ,"~err[.prom.updval[`qt_n_total;{x}];1]];

/ load order: a handler assigned after init (tick's u.q assigns .z.pc) is wrapped again at the next sample
pclate:{[x]guard x;lastpc::x};
.z.pc:pclate;
check[".z.pc is the user's now";not .z.pc~.prom.mine`pc];
.prom.sample[];
check["wrapped again at the next sample";(.z.pc~.prom.mine`pc)&pclate~.prom.orig`pc];
c0:val"kdb_connections_closed_total{kind=\"ipc\"}";
.z.pc 7i;
check["the new .z.pc runs";7i~lastpc];
check["and is counted";(c0+1)=val"kdb_connections_closed_total{kind=\"ipc\"}"];
check["nothing more to wrap";(`symbol$())~.prom.rewrap[]];
/ a handler that keeps ours and calls it (dotz style) is left alone: counted once
.z.pg:{[f;x]f x}.z.pg;
check["a handler calling ours is not wrapped again";(`symbol$())~.prom.rewrap[]];
s1:val"kdb_requests_total{handler=\"sync\"}";
.z.pg"1+1";
check["counted once";(s1+1)=val"kdb_requests_total{handler=\"sync\"}"];
.z.pg:.prom.mine`pg;

/ unwrap puts every handler back; twice does nothing
u:.prom.unwrap[];
check["unwrap names what it restored";all`.z.pg`.z.ps`.z.pp`.z.ph`.z.pc`.z.po`.z.exit`.z.ts in u];
check[".z.pg the projection again";pgf~.z.pg];
check[".z.ps the composition again";psf~.z.ps];
check[".z.pp the symbol again";`post~.z.pp];
check[".z.ph q's own";ph0~.z.ph];
check[".z.pc the late one";pclate~.z.pc];
check["undefined ones undefined again";not any .prom.has each`.z.po`.z.exit`.z.ts];
check["the timer kdbprom started is stopped";0=system"t"];
check["unwrap twice";(`symbol$())~.prom.unwrap[]];
w:.prom.rewrap[];
check["rewrap wraps again";all`.z.pg`.z.ps`.z.pc in w];
check[".z.pg ours again";.z.pg~.prom.mine`pg];

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

/ stop: nothing lost; /metrics then answers 503; requests are still answered
st:.prom.stop[];
check["nothing lost";st[`events_recorded]=st[`events_applied]+st`events_dropped];
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
/ a dormant .z.ts (defined, \t 0) is not started
.z.ts:{dormant::1b};
r:.prom.init`job`textfile!(`qtest;tf);
check["a dormant .z.ts is not started";0=system"t"];
.prom.stop[];
.prom.unwrap[];

/ a server (q/test_server.q): real IPC and HTTP, a refused login, a .z.pc assigned after init
port:20000+.z.i mod 20000;
system"q q/test_server.q -p ",string[port]," -q </dev/null >/tmp/kdbprom-qserver.log 2>&1 &";
h:0;
do[100;if[0=h;h:@[hopen;(`$"::",string port;1000);0];if[0=h;system"sleep 0.1"]]];
if[not h>0;-2"FAIL: the server did not start (see /tmp/kdbprom-qserver.log)";exit 1];
check["remote sync call";2~h"1+1"];
check["remote sync error";"type"~@[h;"1+`a";{x}]];
rt:h".prom.text[]";
check["remote calls counted";rt like"*kdb_requests_total{handler=\"sync\"} 2\n*"];
check["remote error counted";rt like"*kdb_request_errors_total{handler=\"sync\"} 1\n*"];
check["remote connection counted";rt like"*kdb_connections_opened_total{kind=\"ipc\"} 1\n*"];
check["listening: sd1 samples";`sd1~h".prom.settings`sampler"];
check["login refused by .z.pw";0~@[hopen;(`$"::",string[port],":bad:pw";1000);0]];
check["refused login counted";(h".prom.text[]")like"*kdb_auth_failures_total 1\n*"];
url:"http://127.0.0.1:",string port;
check["HTTP /metrics";(@[.Q.hg;`$":",url,"/metrics";{x}])like"*kdb_connections_opened_total*"];
@[.Q.hg;`$":",url,"/?1%2B1";{x}];
rt:h".prom.text[]";
check["HTTP GET counted";rt like"*kdb_requests_total{handler=\"http_get\"} 1\n*"];
h".z.pc:{[x]lastpc::x}";
system"sleep 1";
check["the server wrapped its late .z.pc at a sample";h".z.pc~.prom.mine`pc"];
h".prom.stop[];.prom.init @[cfg;`instrument;:;0b]";
check["HTTP /metrics without instrument";(@[.Q.hg;`$":",url,"/metrics";{x}])like"*kdb_info*"];
@[h;"exit 0";::];

/ a batch job ends at the end of its input (nothing keeps q's main loop alive), pushing as it exits
@[hdel;`:/tmp/kdbprom-qbatch.prom;::];
o:system"timeout 30 q q/test_batch.q -q </dev/null; echo rc=$?";
check["batch job ran";any o like"batch done"];
check["batch job ended by itself";"rc=0"~last o];
check["its final push";any(@[read0;`:/tmp/kdbprom-qbatch.prom;()])like"batch_rows_total 3"];

-1 string[n-fails]," passed, ",string[fails]," failed";
exit "i"$fails>0
