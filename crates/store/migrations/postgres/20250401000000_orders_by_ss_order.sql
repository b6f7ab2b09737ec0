-- Orders by their ShipStation orderId: a merged label names absorbed orders only
-- by the ids ShipStation gave them.
CREATE INDEX orders_by_ss_order ON orders (connection, ss_order_id);
