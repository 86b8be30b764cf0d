<?php
require __DIR__ . '/../../record.php';
callgate_record(['receiver' => 'site', 'script' => 'admin/index.php']);
echo "admin\n";
