<?php
// A site page that answers 101 without switching to anything: behind
// callgate it must not turn the client's connection into an unchecked pipe.
require __DIR__ . '/../record.php';
callgate_record(['receiver' => 'site', 'script' => 'switch.php']);
http_response_code(101);
header('Upgrade: websocket');
header('Connection: Upgrade');
echo "not really switching\n";
