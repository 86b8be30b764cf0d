<?php
// A page that answers a WebSocket upgrade with the right
// Sec-WebSocket-Accept but never switches: it proves only that it read the
// key. Behind callgate it must not turn the client's connection into a pipe.
require __DIR__ . '/../record.php';
callgate_record(['receiver' => 'site', 'script' => 'fake_ws.php']);
$key = isset($_SERVER['HTTP_SEC_WEBSOCKET_KEY']) ? $_SERVER['HTTP_SEC_WEBSOCKET_KEY'] : '';
http_response_code(101);
header('Upgrade: websocket');
header('Connection: Upgrade');
header('Sec-WebSocket-Accept: ' . base64_encode(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11', true)));
