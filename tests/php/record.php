<?php
// Shared by the test receivers: append one JSON line describing what this
// request delivered, so a test (or a person) can compare it with what was sent.
// CALLGATE_RECORD names the file; the default suits the README walk-through.
function callgate_record(array $record)
{
    $raw = file_get_contents('php://input');
    $record['method'] = $_SERVER['REQUEST_METHOD'];
    $record['uri'] = $_SERVER['REQUEST_URI'];
    $record['query'] = $_GET;
    $record['verified'] = isset($_SERVER['HTTP_X_CALLGATE_VERIFIED']) ? $_SERVER['HTTP_X_CALLGATE_VERIFIED'] : null;
    $record['content_type'] = isset($_SERVER['CONTENT_TYPE']) ? $_SERVER['CONTENT_TYPE'] : null;
    $record['forwarded_for'] = isset($_SERVER['HTTP_X_FORWARDED_FOR']) ? $_SERVER['HTTP_X_FORWARDED_FOR'] : null;
    $record['raw_sha256'] = hash('sha256', $raw);
    $record['raw_length'] = strlen($raw);
    $file = getenv('CALLGATE_RECORD') ?: sys_get_temp_dir() . '/callgate-receiver.jsonl';
    file_put_contents($file, json_encode($record) . "\n", FILE_APPEND | LOCK_EX);
}

// How the test receivers answer: 500 when asked to fail (?fail=1), else OK.
function callgate_answer()
{
    if (isset($_GET['fail'])) {
        http_response_code(500);
        echo "receiver failed\n";
        exit;
    }
    header('Content-Type: text/plain');
    echo "OK\n";
}
