<?php
// The legacy callback script: reachable only through callgate's verified route.
require __DIR__ . '/../../record.php';
callgate_record(['receiver' => 'site', 'script' => 'tolq/callback.php']);
header('Content-Type: text/plain');
echo "callback\n";
