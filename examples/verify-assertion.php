<?php
// Verify callgate's signed assertion in a PHP receiver. $key is the secret of
// [gateway] assertion.key. Returns the checks callgate vouches for (e.g.
// "ip,token,hmac"), or false for a forged, altered, stale or re-routed request.
function callgate_assertion($key, $max_age = 300)
{
    $h = isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : '';
    $at = strrpos($h, ';sig=');
    if (strncmp($h, 'v1;', 3) !== 0 || $at === false) {
        return false;
    }
    $signed = substr($h, 0, $at);
    // Bound to this method and request target: replayed elsewhere, it fails.
    $message = $signed . "\n" . $_SERVER['REQUEST_METHOD'] . ' ' . $_SERVER['REQUEST_URI'];
    if (!hash_equals(hash_hmac('sha256', $message, $key), substr($h, $at + 5))) {
        return false;
    }
    if (!preg_match('/^v1;t=(\d+);route=.*;checks=([a-z,]+);body=([0-9a-f]{64})$/s', $signed, $m)) {
        return false;
    }
    if (abs(time() - (int) $m[1]) > $max_age) {
        return false;
    }
    if (!hash_equals($m[3], hash('sha256', file_get_contents('php://input')))) {
        return false;
    }
    return $m[2];
}
