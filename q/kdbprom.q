/ kdbprom: push Prometheus metrics from kdb+/q.
/ Load it from the root context:  \l kdbprom.q   then   .prom.init[cfg]  with cfg a dictionary, a JSON file path, or
/ (::) for KDBPROM_* / defaults. The library is $KDBPROM_LIB (with or without .so), else libkdbprom.so beside this script.
/ Every name is fully qualified and defined from root: nothing of ours lands in root or .z except the handler
/ wrappers, and each wrapper chains to the handler that was there before. Loading this script twice changes nothing.
\d .

/ a path made absolute from the working directory (2: needs LD_LIBRARY_PATH for a relative one)
.prom.abs:{$["/"=first x;x;system["cd"],"/",x]};
.prom.dir:.prom.abs{$[count w:where"/"=x;(last w)#x;"."]}first -3#value{};
/ $KDBPROM_LIB with or without .so; relative to the working directory when the file is there, else as given
/ (a bare name is then found by q in $QHOME/<os> or by LD_LIBRARY_PATH)
.prom.libpath:{[e]p:$[count e;e;.prom.dir,"/libkdbprom"];
  if[p like"*.so";p:-3_p];
  if[-11h=type key hsym`$p,".so";p:.prom.abs p];
  hsym`$p};
.prom.lib:.prom.libpath getenv`KDBPROM_LIB;
.prom.bind:{[n;r].[{x 2:y};(.prom.lib;(`$"kdbprom_",string n;r));{[n;e]'"prom: cannot bind kdbprom_",string[n]," from ",(1_string .prom.lib),".so (set KDBPROM_LIB): ",e}n]};

/ exports, bound once; q's hot paths call them directly
.prom.x.init:.prom.bind[`init;2];
.prom.x.decl:.prom.bind[`declare;5];
.prom.x.text:.prom.bind[`text;1];
.prom.x.stats:.prom.bind[`stats;1];
.prom.x.stop:.prom.bind[`stop;1];
.prom.x.push:.prom.bind[`push;1];
.prom.x.b:.prom.bind[`begin;1];
.prom.x.e:.prom.bind[`end;1];
.prom.x.fl:.prom.bind[`fail;1];
.prom.x.conn:.prom.bind[`conn;3];
.prom.x.ev:.prom.bind[`event;1];
.prom.x.sample:.prom.bind[`sample;2];
.prom.x.newmetric:.prom.bind[`newmetric;4];
.prom.x.addmetric:.prom.bind[`addmetric;4];
.prom.x.upd:.prom.bind[`updval;3];
/ stderr lines in the library's format (UTC time, level): .prom.x.log[`WARN;"text"]
.prom.x.log:.prom.bind[`log;2];
.prom.x.collect:.prom.bind[`collect;2];
.prom.x.collectfail:.prom.bind[`collectfail;2];

/ the q API
.prom.series:.prom.bind[`series;2];
.prom.inc:.prom.bind[`inc;2];
.prom.dec:.prom.bind[`dec;2];
.prom.set:.prom.bind[`set;2];
.prom.observe:.prom.bind[`observe;2];
.prom.remove:.prom.bind[`remove;1];
.prom.counter:{[n;h;l].prom.x.decl[`counter;n;h;l;::]};
.prom.gauge:{[n;h;l].prom.x.decl[`gauge;n;h;l;::]};
.prom.histogram:{[n;h;l;b].prom.x.decl[`histogram;n;h;l;b]};
.prom.summary:{[n;h;l;q].prom.x.decl[`summary;n;h;l;q]};
.prom.text:{.prom.x.text[]};
.prom.stats:{.prom.x.stats[]};
/ a client's call in multithreaded input mode runs off the main thread, where no sample can be taken: trapped
.prom.push:{.prom.sample[];.prom.x.push[]};
.prom.stop:{.prom.sample[];.prom.x.stop[]};

/ KX exporter 1.x compatibility; updval's func is one of : + - , or one of `set`inc`dec`observe
.prom.newmetric:{[m;t;l;h].prom.x.newmetric[m;t;l;h]};
.prom.addmetric:{[m;lv;p;s].prom.x.addmetric[m;lv;p;s]};
.prom.op:{$[-11h=type x;x;(":+-,"!`set`inc`dec`observe)first -3!x]};
.prom.updval:{[n;f;v].prom.x.upd[n;.prom.op f;v]};

/ facts about this process, read at init; the library reads the start time from /proc itself, and registers with
/ q's main loop (sd1) only when q listens: a registered descriptor would keep a batch script from ending
.prom.procinfo:{`version`release_date`os`cores`host`port`timer`pid`license_expiry!(.z.K;ssr[string .z.k;".";"-"];.z.o;"j"$.z.c;.z.h;"j"$system"p";"j"$system"t";"j"$.z.i;$[1<count .z.l;86400f*"f"$("D"$.z.l 1)-1970.01.01;0n])};

/ state, kept when the script is loaded again. mine: handler -> our wrapper in place; orig: handler -> what the
/ wrapper calls; undef: handlers that were not defined before ours. The first entry (` -> ::) keeps the values a
/ general list.
.prom.none:(enlist`)!enlist(::);
.prom.settings:@[value;`.prom.settings;`instrument`serve_metrics`interval_ms`sampler`collect_tables!(`$();0b;10000;`none;0b)];
.prom.inited:@[value;`.prom.inited;0b];
.prom.wrapping:@[value;`.prom.wrapping;0b];
.prom.mine:@[value;`.prom.mine;.prom.none];
.prom.orig:@[value;`.prom.orig;.prom.none];
.prom.undef:@[value;`.prom.undef;`$()];
.prom.tstarted:@[value;`.prom.tstarted;0];
.prom.trap:@[value;`.prom.trap;1b];
.prom.nextsample:@[value;`.prom.nextsample;0Np];
/ wrapper generation: unwrap bumps it, so a wrapper left inside someone else's chain passes calls through
.prom.gen:@[value;`.prom.gen;0];

/ process metrics can only be read on the main thread: at init, push, stop and exit, when the flusher wakes q's main
/ loop through sd1 (settings`sampler is `sd1), and from the .z.ts wrapper (`timer, or a .z.ts of the user's). Off the
/ main thread the first assignment signals 'noupdate, before anything is read.
/ sampled only reads: q runs sd1 callbacks in our socket's handle context, where -b forbids global writes and -u
/ system commands. book writes: \e re-read, handlers assigned since re-wrapped (tick's u.q assigns .z.pc late).
/ .prom.collect[name;f]: f, a niladic function, sets the whole declared family name at each sample (a number, a
/ dictionary label value -> number, or a keyed table); .prom.collect[name;::] removes it. Collectors run in the
/ read-only step on q's main thread, each trapped: a failure is counted and leaves the family as it was.
.prom.collectors:@[value;`.prom.collectors;(`$())!()];
.prom.collect:{[n;f]$[(::)~f;.prom.collectors:(enlist n)_ .prom.collectors;100h>type f;'"prom: collect ",string[n],": f must be a function";.prom.collectors[n]:f];};
.prom.run1:{[n;f].[{.prom.x.collect[x;y[]]};(n;f);{[n;e].prom.x.collectfail[n;e]}[n]]};
/ .z.W's bytes per handle (a list of message sizes each in kdb+ 4.x, one number in 3.x): the library counts the
/ handles and derives the output-queue gauges, the slow-subscriber signal. \t goes with .Q.w[] (trapped: -u refuses
/ it off handle 0): under sampler `timer, kdbprom_sample_interval_seconds is 0 while \t is 0 (a dormant .z.ts)
.prom.sampled:{.prom.x.sample[@[.Q.w;::;()!()],@[{enlist[`timer]!enlist"j"$system"t"};::;()!()];"j"$sum each value .z.W];.prom.run1'[key .prom.collectors;value .prom.collectors];};
/ KX exporter 1.x's .prom.on_poll, where a script defines it, runs here (it may write globals), trapped; its error
/ is said once per text (again after a success), not at every sample
.prom.pollerr:@[value;`.prom.pollerr;""];
.prom.poll:{r:@[{.prom.on_poll x;""};::;::];if[count[r]&not r~.prom.pollerr;.prom.x.log[`WARN;".prom.on_poll failed: ",r]];.prom.pollerr:r};
/ \e is read trapped: under -u a system command signals, and the re-wrap after it must still run
.prom.book:{.prom.nextsample:.z.p+1000000*.prom.settings`interval_ms;.prom.trap:@[{0=system"e"};::;{.prom.trap}];if[.prom.wrapping;.prom.wrapall[]];
  if[.prom.has`.prom.on_poll;.prom.poll[]];};
/ sample: both steps, each trapped on its own (a -b client's .prom.push[] still reads what it can); never signals
.prom.sample:{@[.prom.book;::;::];@[.prom.sampled;::;::];};
/ due: the interval has passed, or the next sample lies implausibly far ahead (the wall clock stepped back)
.prom.due:{n:.prom.nextsample;$[null n;1b;(.z.p>n)|n>.z.p+2000000*.prom.settings`interval_ms]};

/ wrappers: k is the handler index (0 sync, 1 async, 2 http_get, 3 http_post, 4 websocket, 5 timer, 6 http_other),
/ g the generation they were made in, e the failure handler .prom.fail[k] made once, at wrap time. The library keeps
/ each request's start time (begin pushes it on a per-thread stack, end and fail pop it), so a call builds no list.
/ Under \e 0 the user's error is counted and re-signalled with the same text. Under \e 1 or 2 it is not trapped, so
/ the debugger stops in the user's own code; a request that fails is then not counted at all.
/ Our own calls never signal; they are trapped all the same, so nothing of ours can reach a client.
.prom.fail:{[k;e]@[.prom.x.fl;k;{}];'e};
.prom.w:{[g;k;e;f;x]if[not g=.prom.gen;:f x];@[.prom.x.b;k;{}];r:$[.prom.trap;@[f;x;e];f x];@[.prom.x.e;k;{}];r};
.prom.ismetrics:{p:first"?"vs x 0;"metrics"~$["/"~first p;1_p;p]};
.prom.resp:{[b]"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nConnection: close\r\nContent-Length: ",string[count b],"\r\n\r\n",b};
.prom.metrics:{@[{.prom.resp .prom.x.text[]};::;{.h.hn["503 Service Unavailable";`txt;x]}]};
/ c: count GET requests (instrument has `http); /metrics itself is never counted, and only looked for when served
.prom.wph:{[g;c;f;x]$[not g=.prom.gen;f x;$[.prom.settings`serve_metrics;@[.prom.ismetrics;x;0b];0b];.prom.metrics[];c;.prom.w[g;2;.prom.fail 2;f;x];f x]};
/ c: count ticks (instrument has `timer and the .z.ts is the user's, not one kdbprom defined to sample)
.prom.wts:{[g;c;f;x]if[not g=.prom.gen;:f x];if[(`sd1<>.prom.settings`sampler)&.prom.due[];.prom.sample[]];$[c;.prom.w[g;5;.prom.fail 5;f;x];f x]};
/ connections: the library counts a close only for a handle whose opening it counted (.z.pc also runs for handles
/ this process opened itself, e.g. an RDB's to its tickerplant)
.prom.wconn:{[g;k;o;f;x]if[g=.prom.gen;.[.prom.x.conn;(k;x;o);{}]];f x};
/ .z.pc 0 is stdin closing (q started with </dev/null), not a connection
.prom.wpc:{[g;f;x]if[(g=.prom.gen)&not 0=x;.[.prom.x.conn;(0;x;0b);{}]];f x};
.prom.wpw:{[g;f;u;p]r:f[u;p];if[(g=.prom.gen)&r~0b;@[.prom.x.ev;`auth_failure;::]];r};
.prom.wbm:{[g;f;x]if[g=.prom.gen;@[.prom.x.ev;`bad_message;::]];f x};
/ exit: sample (reading only), the user's .z.exit first (trapped) so what it records is pushed, then the final push,
/ then the user's error re-signalled (q then suspends the exit, as it would have). The library's exit hook makes the
/ same final push when this wrapper does not run (.z.exit assigned after init, end of input, exit from a thread).
.prom.wexit:{[g;f;x]if[not g=.prom.gen;:f x];
  @[.prom.sampled;::;::];
  e:@[{(0b;x y)}f;x;{(1b;x)}];
  @[.prom.x.stop;::;{.prom.x.log[`ERROR;"final push failed: ",x]}];
  $[e 0;'e 1;e 1]};

/ which handlers to wrap: the instrument groups, .z.ph to serve /metrics, .z.ts to sample, and .z.exit always
.prom.groups:`sync`async`http`websocket`timer`conn!(`pg;`ps;`ph`pp`pm;`ws;`ts;`po`pc`wo`wc`pw`bm);
.prom.want:{s:.prom.settings;distinct raze[.prom.groups s`instrument],$[s`serve_metrics;`ph;()],$[`sd1<>s`sampler;`ts;()],`exit};
/ handlers wrapped around q's default where the user has none; the others (.z.pp .z.pm .z.ws .z.pw .z.bm) only
/ where the user defined them, since defining them changes what q does (.z.ws: q accepts websocket upgrades).
/ .z.ts gets a default only when sampler is `timer: kdbprom defines no .z.ts it did not ask a timer for.
/ The stand-in for an undefined .z.pg/.z.ps is value, which evaluates in the current \d (q's own default: root).
.prom.dflt:`pg`ps`po`pc`wo`wc`ts`exit!(value;value;{[x]};{[x]};{[x]};{[x]};{[x]};{[x]});
.prom.defaults:{$[`timer=.prom.settings`sampler;key .prom.dflt;key[.prom.dflt]except`ts]};
.prom.has:{@[{value x;1b};x;0b]};
/ defined, and not one of our stand-ins (left behind where \x could not delete it: -U, or a name \x does not take)
.prom.defined:{[h]n:.prom.zn h;$[.prom.has n;$[h in key .prom.dflt;not(value n)~.prom.dflt h;1b];0b]};
.prom.zn:{` sv`.z,x};
/ a handler that is a symbol names a function: the wrapper calls whatever the name holds at each call
.prom.fn:{[h;f]$[-11h<>type f;f;h=`pw;{[s;u;p](value s)[u;p]}f;{[s;x](value s)x}f]};
.prom.make:{[h;f]i:.prom.settings`instrument;g:.prom.gen;$[
  h=`ph;.prom.wph[g;`http in i;f];
  h=`ts;.prom.wts[g;(`timer in i)&not h in .prom.undef;f];
  h=`po;.prom.wconn[g;0;1b;f];
  h=`pc;.prom.wpc[g;f];
  h=`wo;.prom.wconn[g;1;1b;f];
  h=`wc;.prom.wconn[g;1;0b;f];
  h=`pw;.prom.wpw[g;f];
  h=`bm;.prom.wbm[g;f];
  h=`exit;.prom.wexit[g;f];
  .prom.wk[g;(`pg`ps`pp`ws`pm!0 1 3 4 6)h;f]]};
.prom.wk:{[g;k;f].prom.w[g;k;.prom.fail k;f]};
/ is w (our wrapper) f itself, or held inside f (a projection or composition, as dotz-style wrappers keep theirs)?
.prom.chains:{[w;f]$[w~f;1b;type[f]within 104 111h;any .z.s[w]each value f;0b]};
/ wraps handler h unless ours is in place (or called by what replaced it); true when it did
.prom.wrap1:{[h]
  n:.prom.zn h;d:.prom.defined h;m:h in key .prom.mine;
  if[d&m;if[.prom.chains[.prom.mine h;value n];:0b]];
  if[not d|h in .prom.defaults[];:0b];
  if[m;.prom.x.log[`INFO;string[n]," changed after .prom.init; wrapping the new definition"]];
  f:$[d;value n;.prom.dflt h];
  .prom.orig[h]:f;
  .prom.undef:$[d;.prom.undef except h;distinct .prom.undef,h];
  n set w:.prom.make[h;.prom.fn[h;f]];
  .prom.mine[h]:w;
  1b};
.prom.wrapall:{w where .prom.wrap1 each w:.prom.want[]};

/ sampler `timer (opt-in): a timer is started only when the process has none and no .z.ts of its own (a dormant .z.ts
/ must not start running). Call .prom.init after \p, \t and .z.ts are set: tick.q reads system"t" to choose batch mode.
.prom.timer:{
  if[(`timer<>.prom.settings`sampler)|0<>system"t";:()];
  if[.prom.defined`ts;:.prom.x.log[`WARN;".z.ts is defined but \\t is 0: process metrics are sampled only at init, .prom.push[], .prom.stop[] and exit"]];
  .prom.tstarted:.prom.settings`interval_ms;
  system"t ",string .prom.tstarted;
  .prom.x.log[`INFO;"sampler timer: started \\t ",string[.prom.tstarted],"; call .prom.init after \\p, \\t and .z.ts are set"]};

/ puts back every handler that still holds our wrapper (and stops the timer kdbprom started); their names. One
/ that was not defined is deleted (\x), or given q's default where \x cannot (-U; names \x does not take), checked.
/ The generation moves on, so a wrapper of ours still held inside someone else's handler passes calls through.
/ Before init or a second time there is nothing to put back: `symbol$()
.prom.unwrap:{
  .prom.wrapping:0b;
  .prom.gen+:1;
  h:1_key .prom.mine;
  r:"b"${[h]n:.prom.zn h;
    if[not .prom.has n;:0b];
    if[not(value n)~.prom.mine h;:0b];
    if[not h in .prom.undef;n set .prom.orig h;:1b];
    @[system;"x ",string n;::];
    if[.prom.has n;if[(value n)~.prom.mine h;n set .prom.dflt h]];
    1b}each h;
  if[.prom.tstarted;if[.prom.tstarted=system"t";system"t 0"]];
  .prom.tstarted:0;
  .prom.mine:.prom.orig:.prom.none;
  .prom.undef:`$();
  (`symbol$()),.prom.zn each h where r};
/ wraps again what the settings ask for, now (each sample does it too): handlers assigned since; their names
.prom.rewrap:{
  if[not .prom.inited;'"prom: not initialised: call .prom.init first"];
  .prom.wrapping:1b;
  .prom.trap:0=system"e";
  (`symbol$()),.prom.zn each .prom.wrapall[]};

/ the q steps of init; a failing one stops the agent init started, so init can simply be retried
.prom.start:{[r]
  .prom.unwrap[];
  .prom.settings:r;
  .prom.inited:1b;
  / collect_tables: rows of the root namespace's in-memory tables (partitioned ones left out: counting them reads disk)
  .prom.collectors:$[r`collect_tables;@[.prom.collectors;`kdb_table_rows;:;{t!count each value each t:tables[]except@[value;`.Q.pt;`$()]}];(enlist`kdb_table_rows)_ .prom.collectors];
  .prom.timer[];
  .prom.rewrap[];
  .prom.sample[];};
.prom.init:{[cfg]
  r:.prom.x.init[cfg;.prom.procinfo[]];
  @[.prom.start;r;{.prom.x.stop[];'x}];
  r};
