<?php
// A front controller, as legacy sites have: every page and, with
// ?action=tolq_callback, the Tolq callback go through index.php.
require __DIR__ . '/../record.php';
$action = isset($_REQUEST['action']) ? $_REQUEST['action'] : 'home';
callgate_record(['receiver' => 'site', 'script' => 'index.php', 'action' => $action]);
header('Content-Type: text/plain');
echo "page $action\n";
