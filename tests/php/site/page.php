<?php
require __DIR__ . '/../record.php';
callgate_record(['receiver' => 'site', 'script' => 'page.php']);
header('Content-Type: text/html');
echo "<html><body>an ordinary page</body></html>\n";
