// A listener that plays a remote endpoint nobody consented to call: it
// counts every connection (one line per connection in LOG, written before
// anything else happens) and answers nothing useful. tests/offline.sh runs it.
//   node countd.mjs PORTFILE LOG
import net from 'node:net';
import fs from 'node:fs';

const [portFile, log] = process.argv.slice(2);
fs.writeFileSync(log, '');
const srv = net.createServer((sock) => {
    fs.appendFileSync(log, `${new Date().toISOString()} connection from ${sock.remotePort}\n`);
    sock.on('data', (d) => fs.appendFileSync(log, `  ${d.length} bytes: ${d.toString('latin1', 0, 80).replace(/\s+/g, ' ')}\n`));
    sock.on('error', () => {});
    sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
});
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(srv.address().port)));
process.on('SIGTERM', () => srv.close(() => process.exit(0)));
