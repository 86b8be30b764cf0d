<?php
// A receiver that tells everything it read, as PHP read it: the test compares
// this with what callgate checked. Answers 200 "OK".
$raw = file_get_contents('php://input');
$server = [];
foreach ($_SERVER as $k => $v) {
    if (strpos($k, 'HTTP_') === 0) {
        $server[$k] = $v;
    }
}
$record = [
    'method' => $_SERVER['REQUEST_METHOD'],
    'uri' => $_SERVER['REQUEST_URI'],
    'get' => $_GET,
    'post' => $_POST,
    'request' => $_REQUEST,
    'server' => $server,
    'headers' => function_exists('getallheaders') ? getallheaders() : null,
    'body' => $raw,
];
$file = getenv('CALLGATE_RECORD') ?: sys_get_temp_dir() . '/callgate-receiver.jsonl';
file_put_contents($file, json_encode($record) . "\n", FILE_APPEND | LOCK_EX);
header('Content-Type: text/plain');
echo "OK\n";
