-- Labels by their ShipStation creation time: the shipment poll counts the labels it
-- holds in the window it re-reads (Store::count_labels_created), so that it reads
-- again only when ShipStation holds one it does not.
CREATE INDEX shipments_labels_by_created ON shipments (connection, ss_created_at) WHERE kind = 'label';
