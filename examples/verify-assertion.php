<?php
// Verify callgate's signed assertion in a PHP receiver. $key is the secret of
// [gateway] assertion.key.
//
// Version 2 ([gateway] assertion = { key = ..., version = 2 }): use
// callgate_assertion_v2(). Version 1 (the default): callgate_assertion().

// v1. Returns the checks callgate vouches for (e.g. "ip,token,hmac"), or false
// for a forged, altered, stale or re-routed request.
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

// v2. $route: the callgate route this script serves (a callback for another
// route is refused). $seen_dir: a directory only this site writes, where
// each assertion id is remembered so a request is accepted once (APCu is
// used instead when it is enabled). Returns the checks callgate vouches for,
// or false.
//
// What is checked, all against what this request is, never against what the
// header says: route, method, request target, Host, Content-Type, the body's
// SHA-256, the age, and (with APCu or $seen_dir) that the id is new.
function callgate_assertion_v2($key, $route, $seen_dir = null, $max_age = 300)
{
    $h = isset($_SERVER['HTTP_X_CALLGATE_ASSERTION']) ? $_SERVER['HTTP_X_CALLGATE_ASSERTION'] : '';
    $at = strrpos($h, ';sig=');
    if ($at === false || !preg_match('/^v2;t=(\d{1,12});id=([0-9a-f]{32});route=[^;]*;checks=([a-z,]*);host=/', $h, $m)) {
        return false;
    }
    list(, $t, $id, $checks) = $m;
    // The string callgate signed if it vouched for exactly this request.
    $host = isset($_SERVER['HTTP_HOST']) ? $_SERVER['HTTP_HOST'] : '';
    $ct = isset($_SERVER['CONTENT_TYPE']) ? $_SERVER['CONTENT_TYPE'] : '';
    $body = hash('sha256', file_get_contents('php://input'));
    $expected = "v2;t=$t;id=$id;route=$route;checks=$checks;host=$host;ct=$ct;body=$body";
    $message = $expected . "\n" . $_SERVER['REQUEST_METHOD'] . ' ' . $_SERVER['REQUEST_URI'];
    if (!hash_equals(hash_hmac('sha256', $message, $key), substr($h, $at + 5))) {
        return false;
    }
    if (abs(time() - (int) $t) > $max_age) {
        return false;
    }
    if (!callgate_assertion_once($id, $seen_dir, $max_age)) {
        return false;
    }
    return $checks;
}

// Remember $id for twice the age limit; false if it was seen before.
function callgate_assertion_once($id, $seen_dir, $max_age)
{
    if (function_exists('apcu_add') && ini_get('apc.enabled') && (PHP_SAPI !== 'cli' || ini_get('apc.enable_cli'))) {
        return apcu_add('callgate-assertion-' . $id, 1, 2 * $max_age);
    }
    if ($seen_dir === null) {
        return true; // nowhere to remember: the age limit bounds a replay
    }
    if (!is_dir($seen_dir) && !@mkdir($seen_dir, 0700, true) && !is_dir($seen_dir)) {
        return false;
    }
    // 'x' creates the file or fails if it exists: one step, no race.
    $f = @fopen($seen_dir . '/' . $id, 'x');
    if ($f === false) {
        return false;
    }
    fclose($f);
    // Now and then, forget ids older than any assertion still accepted.
    if (mt_rand(0, 99) === 0) {
        foreach (glob($seen_dir . '/*') as $old) {
            if (filemtime($old) < time() - 2 * $max_age) {
                @unlink($old);
            }
        }
    }
    return true;
}
