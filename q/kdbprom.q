/ kdbprom: push Prometheus metrics from kdb+/q.
/ \l kdbprom.q   then   .prom.init[cfg]   with cfg a dictionary, a JSON file path, or (::) for KDBPROM_* / defaults.
/ The library is $KDBPROM_LIB, else libkdbprom.so beside this script.
/ Every name below is fully qualified and defined from root: nothing of ours lands in root or .z except the
/ handler wrappers, and each wrapper chains to the handler that was there before.

.prom.dir:{$[count w:where"/"=x;(last w)#x;"."]}first -3#value{};
.prom.lib:hsym`$$[count getenv`KDBPROM_LIB;getenv`KDBPROM_LIB;.prom.dir,"/libkdbprom"];
.prom.bind:{[n;r].prom.lib 2:(`$"kdbprom_",string n;r)};

/ exports, bound once; q's hot paths call them directly
.prom.x.init:.prom.bind[`init;2];
.prom.x.decl:.prom.bind[`declare;5];
.prom.x.text:.prom.bind[`text;1];
.prom.x.stats:.prom.bind[`stats;1];
.prom.x.stop:.prom.bind[`stop;1];
.prom.x.push:.prom.bind[`push;1];
.prom.x.b:.prom.bind[`begin;1];
.prom.x.e:.prom.bind[`end;2];
.prom.x.fl:.prom.bind[`fail;2];
.prom.x.conn:.prom.bind[`conn;2];
.prom.x.sample:.prom.bind[`sample;2];
.prom.x.newmetric:.prom.bind[`newmetric;4];
.prom.x.addmetric:.prom.bind[`addmetric;4];
.prom.x.upd:.prom.bind[`updval;3];

/ the q API
.prom.series:.prom.bind[`series;2];
.prom.inc:.prom.bind[`inc;2];
.prom.dec:.prom.bind[`dec;2];
.prom.set:.prom.bind[`set;2];
.prom.observe:.prom.bind[`observe;2];
.prom.remove:.prom.bind[`remove;1];
.prom.counter:{[n;h;l].prom.x.decl[`counter;n;h;l;::]};
.prom.gauge:{[n;h;l].prom.x.decl[`gauge;n;h;l;::]};
/ b: bounds (a float vector), () for the default bounds, `native, or a dictionary of buckets/factor/zero_threshold/max_buckets; passed on unchanged
.prom.histogram:{[n;h;l;b].prom.x.decl[`histogram;n;h;l;b]};
.prom.summary:{[n;h;l;q].prom.x.decl[`summary;n;h;l;q]};
.prom.text:{.prom.x.text[]};
.prom.stats:{.prom.x.stats[]};
.prom.push:{.prom.sample[];.prom.x.push[]};
.prom.stop:{.prom.sample[];.prom.x.stop[]};

/ KX exporter 1.x compatibility; updval's func is one of : + - ,
.prom.newmetric:{[m;t;l;h].prom.x.newmetric[m;t;l;h]};
.prom.addmetric:{[m;lv;p;s].prom.x.addmetric[m;lv;p;s]};
.prom.op:{(":+-,"!`set`inc`dec`observe)first -3!x};
.prom.updval:{[n;f;v].prom.x.upd[n;.prom.op f;v]};

/ facts about this process, read once
.prom.start:1e-9*"j"$.z.p-1970.01.01D00:00:00.000000000;
.prom.procinfo:{`version`release_date`os`cores`host`port`pid`license_expiry`start_time!(.z.K;ssr[string .z.k;".";"-"];.z.o;"j"$.z.c;.z.h;"j"$system"p";"j"$.z.i;$[1<count .z.l;86400f*"f"$("D"$.z.l 1)-1970.01.01;0n];.prom.start)};

/ process metrics can only be read on the main thread: at init, at push and stop, and either when the flusher
/ wakes q's main loop through sd1 (settings`sampler is `sd1) or, without sd1, from the .z.ts wrapper
/ (settings before init: so .prom.stop[] or .prom.push[] then get the library's "not initialised")
.prom.settings:@[value;`.prom.settings;`instrument`serve_metrics`interval_ms`sampler!(0b;0b;10000;`timer)];
.prom.nextsample:0Np;
.prom.sample:{.[.prom.x.sample;(.Q.w[];count .z.W);{}];.prom.nextsample:.z.p+1000000*.prom.settings`interval_ms};

/ wrappers: k is the handler index (0 sync, 1 async, 2 http_get, 3 http_post, 4 websocket, 5 timer).
/ The user's error is counted and re-signalled unchanged; our own calls are trapped and never reach the client.
.prom.fail:{[k;t;e].[.prom.x.fl;(k;t);{}];'e};
.prom.w:{[k;f;x]t:@[.prom.x.b;::;0];r:@[f;x;.prom.fail[k;t]];.[.prom.x.e;(k;t);{}];r};
.prom.ismetrics:{p:first"?"vs x 0;"metrics"~$["/"~first p;1_p;p]};
.prom.resp:{[b]"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nConnection: close\r\nContent-Length: ",string[count b],"\r\n\r\n",b};
.prom.wph:{[f;x]$[.prom.settings[`serve_metrics]&.prom.ismetrics x;.prom.resp .prom.text[];.prom.w[2;f;x]]};
.prom.wts:{[f;x]if[.z.p>.prom.nextsample;.prom.sample[]];.prom.w[5;f;x]};
.prom.wconn:{[k;o;f;x].[.prom.x.conn;(k;o);{}];f x};
.prom.wpc:{[f;x]if[not 0=x;.[.prom.x.conn;(0;0b);{}]];f x};
.prom.wexit:{[f;x]@[.prom.stop;::;{-2"kdbprom: final push failed: ",x}];f x};
.prom.has:{@[{value x;1b};x;0b]};
.prom.old:{[h;d]@[value;h;{[d;e]d}d]};

.prom.wrapped:@[value;`.prom.wrapped;0b];
.prom.wrap:{
  if[.prom.wrapped;:()];
  .prom.wrapped:1b;
  .z.pg:.prom.w[0;.prom.old[`.z.pg;value]];
  .z.ps:.prom.w[1;.prom.old[`.z.ps;value]];
  .z.ph:.prom.wph[.prom.old[`.z.ph;{[x]}]];
  / defining .z.pp or .z.ws changes what q accepts: wrap them only where the user defined them
  if[.prom.has`.z.pp;.z.pp:.prom.w[3;.z.pp]];
  if[.prom.has`.z.ws;.z.ws:.prom.w[4;.z.ws]];
  .z.ts:.prom.wts[.prom.old[`.z.ts;{[x]}]];
  .z.po:.prom.wconn[0;1b;.prom.old[`.z.po;{[x]}]];
  .z.pc:.prom.wpc[.prom.old[`.z.pc;{[x]}]];
  .z.wo:.prom.wconn[1;1b;.prom.old[`.z.wo;{[x]}]];
  .z.wc:.prom.wconn[1;0b;.prom.old[`.z.wc;{[x]}]];
  / without sd1 the timer samples: start one only if the user has none, and say so
  if[(`timer~.prom.settings`sampler)&0=system"t";
    system"t ",string .prom.settings`interval_ms;
    -1"kdbprom: no timer was set; started \\t ",string[.prom.settings`interval_ms]," to sample process metrics"];
  }

.prom.exitwrapped:@[value;`.prom.exitwrapped;0b];
.prom.wrapexit:{if[.prom.exitwrapped;:()];.prom.exitwrapped:1b;.z.exit:.prom.wexit[.prom.old[`.z.exit;{[x]}]]};

.prom.init:{[cfg]
  r:.prom.x.init[cfg;.prom.procinfo[]];
  .prom.settings:r;
  if[r`instrument;.prom.wrap[]];
  .prom.wrapexit[];
  .prom.sample[];
  r}
