<?php
// A Tolq receiver in the style of the legacy scripts callgate protects: it
// reads the raw JSON from php://input and trusts whatever arrives. It does
// not check the signature itself: callgate does that in front of it.
require __DIR__ . '/../record.php';

$raw = file_get_contents('php://input');
$callback = json_decode($raw, true);

callgate_record(array(
    'receiver' => 'tolq',
    'decoded' => $callback,
    'signature' => isset($_SERVER['HTTP_X_TOLQ_SIGNATURE']) ? $_SERVER['HTTP_X_TOLQ_SIGNATURE'] : null,
));

callgate_answer();
