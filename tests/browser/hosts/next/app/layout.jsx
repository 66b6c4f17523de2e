import "@plugdock/react/styles.css";

import { Acme } from "./acme";

export const metadata = { title: "Acme (a Next.js host)" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <Acme>{children}</Acme>
      </body>
    </html>
  );
}
